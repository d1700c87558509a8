// What the station and labeling pages draw over an image, in the image's own pixels: SVG
// elements, captions, and the model's region masks.
//
// A model region is {x, y, width, height, label, score, mask_rle?} in original image pixels.
// `mask_rle` is {"size": [rows, columns], "counts": [...]}: row-major run lengths, the first run
// counting zeros, on a grid that covers exactly the region's box (cell (i, j) spans
// x + j * width / columns to x + (j + 1) * width / columns, and likewise in y). A mask is decoded
// once into a canvas of rows x columns pixels and drawn scaled into the box, never as one shape
// per cell. Line widths and caption sizes are the pages' CSS (loupe.css, "the overlay").

const SVG = "http://www.w3.org/2000/svg";
// Where a caption sits against the point it names (a box's corner): above it, below it, or
// inside the box's top-left corner. In em, so the gap follows the caption's on-screen size.
const CAPTION_PLACES = {
  above: { baseline: "alphabetic", dx: "0", dy: "-0.35em" },
  below: { baseline: "hanging", dx: "0", dy: "0.3em" },
  inside: { baseline: "hanging", dx: "0.3em", dy: "0.3em" },
};
const decoded = new WeakMap(); // mask_rle -> its cells, or null
const pictures = new WeakMap(); // mask_rle -> Map(colour -> {canvas, url})

export function svg(tag, attributes) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes || {})) element.setAttribute(name, value);
  return element;
}

export function caption(x, y, text, place = "inside") {
  const where = CAPTION_PLACES[place];
  const element = svg("text", { x, y, dx: where.dx, dy: where.dy, "dominant-baseline": where.baseline });
  element.textContent = text;
  return element;
}

// The mask's cells, row-major, 1 where the defect is; null (and a console warning) when the
// run lengths do not add up to the grid: such a mask is not drawn rather than drawn wrong.
function maskCells(rle) {
  if (!decoded.has(rle)) decoded.set(rle, decode(rle));
  return decoded.get(rle);
}

function decode(rle) {
  const [rows, columns] = (rle && rle.size) || [];
  const counts = (rle && rle.counts) || [];
  const total = rows * columns;
  if (!(Number.isInteger(rows) && Number.isInteger(columns) && total > 0)) {
    console.warn("mask_rle without a usable size", rle);
    return null;
  }
  const cells = new Uint8Array(total);
  let position = 0;
  for (let run = 0; run < counts.length; run++) {
    const count = counts[run];
    if (!Number.isInteger(count) || count < 0 || position + count > total) {
      console.warn("mask_rle whose runs overflow its size", rle);
      return null;
    }
    if (run % 2 === 1) cells.fill(1, position, position + count);
    position += count;
  }
  if (position !== total) {
    console.warn(`mask_rle covers ${position} of its ${total} cells`, rle);
    return null;
  }
  return cells;
}

// The mask (one that decodes: hasMask) as a canvas of columns x rows pixels, `colour` where
// the defect is and clear elsewhere, with its PNG data URL; made once per mask and colour.
function maskPicture(rle, colour) {
  if (!pictures.has(rle)) pictures.set(rle, new Map());
  const byColour = pictures.get(rle);
  if (!byColour.has(colour)) byColour.set(colour, paintCells(rle, colour));
  return byColour.get(colour);
}

function paintCells(rle, colour) {
  const [rows, columns] = rle.size;
  const canvas = document.createElement("canvas");
  canvas.width = columns;
  canvas.height = rows;
  const context = canvas.getContext("2d");
  const pixels = context.createImageData(columns, rows);
  maskCells(rle).forEach((on, index) => {
    if (on) pixels.data.fill(255, index * 4, index * 4 + 4);
  });
  context.putImageData(pixels, 0, 0);
  context.globalCompositeOperation = "source-in";
  context.fillStyle = colour;
  context.fillRect(0, 0, columns, rows);
  return { canvas, url: canvas.toDataURL("image/png") };
}

export function hasMask(region) {
  return Boolean(region.mask_rle && maskCells(region.mask_rle));
}

// An SVG <image> of the region's mask stretched over its box (class "region-mask"), or null
// when the region has no mask.
export function maskImage(region, colour) {
  if (!hasMask(region)) return null;
  const picture = maskPicture(region.mask_rle, colour);
  return svg("image", {
    class: "region-mask",
    href: picture.url,
    x: region.x,
    y: region.y,
    width: region.width,
    height: region.height,
    preserveAspectRatio: "none",
  });
}

// Paint the region's mask into a 2D context at image resolution, each cell scaled onto the box
// (a pixel is painted when its centre lies in a defect cell). False when there is no mask.
export function paintMask(context, region, colour) {
  if (!hasMask(region)) return false;
  const picture = maskPicture(region.mask_rle, colour);
  context.save();
  context.globalCompositeOperation = "source-over";
  context.imageSmoothingEnabled = false;
  context.drawImage(picture.canvas, region.x, region.y, region.width, region.height);
  context.restore();
  return true;
}

// A region's outline (class `region <kind>`) with its caption above it, or inside its top when
// the box is at the image's top edge; with `maskColour`, the region's mask under the outline.
// `zoom` is the stage's, so the room for the caption is measured on the screen.
const CAPTION_SCREEN_PIXELS = 16;

export function outlined(region, { kind, label, zoom, maskColour = null }) {
  const group = svg("g", { class: `region ${kind}` });
  const mask = maskColour ? maskImage(region, maskColour) : null;
  if (mask) group.append(mask);
  group.append(svg("rect", { x: region.x, y: region.y, width: region.width, height: region.height }));
  const roomAbove = region.y * zoom >= CAPTION_SCREEN_PIXELS;
  group.append(caption(region.x, region.y, label, roomAbove ? "above" : "inside"));
  return group;
}
