// The unit page: the unit's image with its layers of regions (each model's, with masks, and the
// person's), each shown or hidden by its checkbox, zoomed and panned with the station page's
// viewport and the keys of the one keymap (lib/keymap.js). The layers come from the server in the image's own pixels (json_script).

import { $ } from "./lib/dom.js";
import { bindKeys, renderHelp } from "./lib/keymap.js";
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
const PAN_STEP = 60;
const PAN_BY_KEY = { arrowleft: [PAN_STEP, 0], arrowright: [-PAN_STEP, 0], arrowup: [0, PAN_STEP], arrowdown: [0, -PAN_STEP] };
bindKeys("unit", {
  mode: () => "unit",
  handlers: {
    zoomIn: () => view.zoomBy(ZOOM_STEP),
    zoomOut: () => view.zoomBy(1 / ZOOM_STEP),
    fit: () => view.fit(),
    pan: (key) => view.panBy(...PAN_BY_KEY[key]),
  },
});
renderHelp($("unit-keys"), "unit");
