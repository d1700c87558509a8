// Editing a drawn shape in place, on the labeling page (select.js) and the station page (the
// inspector's own regions): a box's 8 handles resize it and its body moves it; a polygon's
// vertices are dragged, a press on an edge adds a vertex there (and drags it), and a vertex is
// removed (never below 3). One mechanism for both pages; they keep their shapes as they like and
// hand this module the geometry: a box {x, y, width, height} (edited in place) or a polygon
// {points: [[x, y], ...]}. Everything is in image pixels; `zoom` turns the pages' screen slack
// into image pixels.

import { svg } from "./regions.js";

const HANDLE_SCREEN_PIXELS = 9; // a press this near a handle or vertex grabs it
const EDGE_SCREEN_PIXELS = 6; // a press this near a polygon's edge adds a vertex there
export const MIN_POLYGON_POINTS = 3;
const MIN_BOX_PIXELS = 1;

// The 8 handles of a box: corners and edge middles, named by compass point.
export function boxHandles(box) {
  const { x, y, width: w, height: h } = box;
  return [
    ["nw", x, y], ["n", x + w / 2, y], ["ne", x + w, y], ["e", x + w, y + h / 2],
    ["se", x + w, y + h], ["s", x + w / 2, y + h], ["sw", x, y + h], ["w", x, y + h / 2],
  ].map(([name, hx, hy]) => ({ name, x: hx, y: hy }));
}

function near(a, b, slack) {
  return Math.hypot(a.x - b.x, a.y - b.y) <= slack;
}

function insideBox(box, point, slack = 0) {
  return (
    point.x >= box.x - slack && point.x <= box.x + box.width + slack &&
    point.y >= box.y - slack && point.y <= box.y + box.height + slack
  );
}

export function insidePolygon(points, point) {
  let inside = false;
  for (let i = 0, j = points.length - 1; i < points.length; j = i++) {
    const [xi, yi] = points[i];
    const [xj, yj] = points[j];
    if (yi > point.y !== yj > point.y && point.x < ((xj - xi) * (point.y - yi)) / (yj - yi) + xi) {
      inside = !inside;
    }
  }
  return inside;
}

// The point of segment a-b nearest to p, and its distance.
function nearestOnSegment(a, b, p) {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const length = dx * dx + dy * dy;
  const t = length ? Math.min(1, Math.max(0, ((p.x - a[0]) * dx + (p.y - a[1]) * dy) / length)) : 0;
  const x = a[0] + t * dx;
  const y = a[1] + t * dy;
  return { x, y, distance: Math.hypot(p.x - x, p.y - y) };
}

// What a press at `point` grabs of a shape ("box" or "polygon" with its geometry), or null:
// {part: "handle", handle} (box), {part: "vertex", index}, {part: "edge", index, at} (polygon:
// the edge after vertex `index`), or {part: "body"}. Handles and vertices only when `handles`
// (the shape is selected and shows them).
export function grab(kind, geometry, point, zoom, { handles = true } = {}) {
  const slack = HANDLE_SCREEN_PIXELS / zoom;
  if (kind === "box") {
    if (handles) {
      const handle = boxHandles(geometry).find((h) => near(h, point, slack));
      if (handle) return { part: "handle", handle: handle.name };
    }
    return insideBox(geometry, point, EDGE_SCREEN_PIXELS / zoom) ? { part: "body" } : null;
  }
  const points = geometry.points;
  if (handles) {
    const index = points.findIndex(([x, y]) => near({ x, y }, point, slack));
    if (index >= 0) return { part: "vertex", index };
    for (let i = 0; i < points.length; i++) {
      const at = nearestOnSegment(points[i], points[(i + 1) % points.length], point);
      if (at.distance <= EDGE_SCREEN_PIXELS / zoom) return { part: "edge", index: i, at: [at.x, at.y] };
    }
  }
  return insidePolygon(points, point) ? { part: "body" } : null;
}

export function copyGeometry(kind, geometry) {
  return kind === "box" ? { ...geometry } : { points: geometry.points.map((p) => [...p]) };
}

export function sameGeometry(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

// Put `source`'s values into `target` (the same shape's geometry object stays in place).
export function assignGeometry(kind, target, source) {
  if (kind === "box") Object.assign(target, source);
  else target.points = source.points.map((p) => [...p]);
}

const clampTo = (value, low, high) => Math.min(Math.max(value, low), high);

// A drag begun at `start` on what `grab` returned; an edge press first adds its vertex, which
// the drag then moves. `size` {width, height}: the image, which nothing leaves.
export function dragBegin(kind, geometry, grabbed, start, size) {
  let part = grabbed;
  if (grabbed.part === "edge") {
    geometry.points.splice(grabbed.index + 1, 0, [...grabbed.at]);
    part = { part: "vertex", index: grabbed.index + 1 };
  }
  const from = copyGeometry(kind, geometry);
  return { kind, geometry, part, start, from, size, added: grabbed.part === "edge" };
}

// The drag moved to `point`: the geometry follows.
export function dragMove(drag, point) {
  const { kind, geometry, part, start, from, size } = drag;
  const dx = point.x - start.x;
  const dy = point.y - start.y;
  if (kind === "box") {
    if (part.part === "body") {
      geometry.x = clampTo(from.x + dx, 0, size.width - from.width);
      geometry.y = clampTo(from.y + dy, 0, size.height - from.height);
      return;
    }
    let x1 = from.x;
    let y1 = from.y;
    let x2 = from.x + from.width;
    let y2 = from.y + from.height;
    const handle = part.handle;
    if (handle.includes("w")) x1 = clampTo(from.x + dx, 0, size.width);
    if (handle.includes("e")) x2 = clampTo(from.x + from.width + dx, 0, size.width);
    if (handle.includes("n")) y1 = clampTo(from.y + dy, 0, size.height);
    if (handle.includes("s")) y2 = clampTo(from.y + from.height + dy, 0, size.height);
    // dragged past the opposite side: the box turns over rather than vanishing
    geometry.x = Math.min(x1, x2);
    geometry.y = Math.min(y1, y2);
    geometry.width = Math.max(MIN_BOX_PIXELS, Math.abs(x2 - x1));
    geometry.height = Math.max(MIN_BOX_PIXELS, Math.abs(y2 - y1));
    if (geometry.x + geometry.width > size.width) geometry.x = size.width - geometry.width;
    if (geometry.y + geometry.height > size.height) geometry.y = size.height - geometry.height;
    return;
  }
  if (part.part === "vertex") {
    const [x, y] = from.points[part.index];
    geometry.points[part.index] = [clampTo(x + dx, 0, size.width), clampTo(y + dy, 0, size.height)];
    return;
  }
  // the whole polygon, kept inside the image
  const xs = from.points.map((p) => p[0]);
  const ys = from.points.map((p) => p[1]);
  const mx = clampTo(dx, -Math.min(...xs), size.width - Math.max(...xs));
  const my = clampTo(dy, -Math.min(...ys), size.height - Math.max(...ys));
  geometry.points = from.points.map(([x, y]) => [x + mx, y + my]);
}

// Whether the drag changed the geometry (a vertex added on an edge does).
export function dragChanged(drag) {
  return drag.added || !sameGeometry(drag.from, drag.geometry);
}

// Remove a polygon's vertex; false when it has only MIN_POLYGON_POINTS.
export function removeVertex(geometry, index) {
  if (geometry.points.length <= MIN_POLYGON_POINTS) return false;
  geometry.points.splice(index, 1);
  return true;
}

// The handles (box) or vertices (polygon) of the selected shape, in the SVG layer `layer`;
// `vertex`: the chosen vertex, drawn filled.
export function drawHandles(layer, kind, geometry, colour, vertex = null) {
  const group = svg("g", { class: "edit-handles" });
  group.style.setProperty("--colour", colour);
  if (kind === "box") {
    for (const handle of boxHandles(geometry)) {
      group.append(svg("circle", { class: `handle handle-${handle.name}`, "data-handle": handle.name, cx: handle.x, cy: handle.y }));
    }
  } else {
    geometry.points.forEach(([x, y], index) => {
      const chosen = index === vertex ? " chosen" : "";
      group.append(svg("circle", { class: `vertex${chosen}`, "data-vertex": index, cx: x, cy: y }));
    });
  }
  layer.append(group);
}

// A shape's area in image pixels (a box's, a polygon's by the shoelace formula).
export function area(kind, geometry) {
  if (kind === "box") return geometry.width * geometry.height;
  const points = geometry.points;
  let twice = 0;
  for (let i = 0, j = points.length - 1; i < points.length; j = i++) {
    twice += (points[j][0] + points[i][0]) * (points[j][1] - points[i][1]);
  }
  return Math.abs(twice) / 2;
}

// The station page's inspector regions (boxes {x, y, width, height, ...}): a press on one selects
// it and drags its body, a press on the selected one's handles resizes it; a press elsewhere
// deselects and says so (false), for the page to pan or draw. `regions()`: the boxes now;
// `size()`: the image's; `onChange()` redraws.
export class RegionEditor {
  constructor({ view, regions, size, onChange }) {
    this.view = view;
    this.regions = regions;
    this.size = size;
    this.onChange = onChange;
    this.selected = null;
    this.drag = null;
    window.addEventListener("pointermove", (event) => {
      if (!this.drag || event.pointerId !== this.drag.pointerId) return;
      dragMove(this.drag, this.view.imagePoint(event));
      this.onChange();
    });
    const end = (event) => {
      if (!this.drag || event.pointerId !== this.drag.pointerId) return;
      this.drag = null;
      this.onChange();
    };
    window.addEventListener("pointerup", end);
    window.addEventListener("pointercancel", end);
  }

  // Whether the press grabbed a region (and began dragging it).
  press(event) {
    const point = this.view.imagePoint(event);
    const zoom = this.view.zoom;
    if (this.selected && !this.regions().includes(this.selected)) this.selected = null;
    let grabbed = this.selected && grab("box", this.selected, point, zoom);
    let region = grabbed ? this.selected : null;
    if (!region) {
      region = [...this.regions()].reverse().find((r) => grab("box", r, point, zoom, { handles: false })) || null;
      grabbed = region && { part: "body" };
    }
    if (!region) {
      const had = this.selected;
      this.selected = null;
      if (had) this.onChange();
      return false;
    }
    this.selected = region;
    this.drag = { ...dragBegin("box", region, grabbed, point, this.size()), pointerId: event.pointerId };
    this.onChange();
    return true;
  }

  // The selected region's handles, in `layer`.
  draw(layer, colour) {
    if (this.selected && this.regions().includes(this.selected)) drawHandles(layer, "box", this.selected, colour);
  }
}
