// The unit page: the unit's image with its layers of regions (each model's, with masks, and the
// person's), each shown or hidden by its checkbox, zoomed and panned with the station page's
// viewport. The layers come from the server in the image's own pixels (json_script).

import { $ } from "./lib/dom.js";
import { outlined } from "./lib/regions.js";
import { Viewport } from "./lib/viewport.js";

const MODEL_COLOUR = "#ff3b30"; // loupe.css: .region.model
const ZOOM_STEP = 1.25;

const data = JSON.parse($("unit-layers").textContent);
const image = $("unit-image");
const overlay = $("overlay");
const stage = $("stage");
const shown = new Map(data.layers.map((layer) => [layer.id, { regions: true, masks: true }]));
const view = new Viewport($("viewport"), stage, {
  maxZoom: 20,
  onChange: (viewport) => {
    $("zoom").textContent = `${Math.round(viewport.zoom * 100)} %`;
    draw();
  },
});

image.width = data.width;
image.height = data.height;
overlay.setAttribute("viewBox", `0 0 ${data.width} ${data.height}`);
overlay.setAttribute("width", data.width);
overlay.setAttribute("height", data.height);
image.addEventListener("load", () => view.show(data.width, data.height), { once: true });
image.src = data.image_url;

function draw() {
  overlay.innerHTML = "";
  for (const layer of data.layers) {
    const state = shown.get(layer.id);
    if (!state.regions) continue;
    for (const region of layer.regions) {
      const score = typeof region.score === "number" ? ` ${region.score.toFixed(2)}` : "";
      const group = outlined(region, {
        kind: layer.kind,
        label: `${region.label}${score}`,
        zoom: view.zoom,
        maskColour: layer.kind === "model" && state.masks ? MODEL_COLOUR : null,
      });
      group.dataset.layer = layer.id;
      overlay.append(group);
    }
  }
}

document.querySelectorAll("#layers input[data-layer]").forEach((box) =>
  box.addEventListener("change", () => {
    shown.get(box.dataset.layer).regions = box.checked;
    draw();
  })
);
document.querySelectorAll("#layers input[data-masks]").forEach((box) =>
  box.addEventListener("change", () => {
    shown.get(box.dataset.masks).masks = box.checked;
    draw();
  })
);

$("zoom-in").addEventListener("click", () => view.zoomBy(ZOOM_STEP));
$("zoom-out").addEventListener("click", () => view.zoomBy(1 / ZOOM_STEP));
$("zoom-fit").addEventListener("click", () => view.fit());
$("zoom-actual").addEventListener("click", () => view.zoomBy(1 / view.zoom));
$("viewport").addEventListener("pointerdown", (event) => {
  if (event.button === 0) view.startPan(event); // a mouse, a pen or a finger
});
$("viewport").addEventListener("keydown", (event) => {
  const keys = { "+": ZOOM_STEP, "=": ZOOM_STEP, "-": 1 / ZOOM_STEP };
  if (keys[event.key]) view.zoomBy(keys[event.key]);
  else if (event.key === "0") view.fit();
  else return;
  event.preventDefault();
});
