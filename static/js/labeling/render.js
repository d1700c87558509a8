// Drawing the labeling page: the overlay over the image, the list of shapes, the class list.
// The other modules ask for a redraw through state.js (render(), renderLive(), ...), where this
// module registers its painters.
//
// The overlay has three layers: the reference (the model's proposal, the current label, the label
// under review), the shapes being drawn, and the live feedback of the mouse (each tool's own:
// box.js, polygon.js, brush.js). Captions do not cover each other: the model's above its box, the
// current label's below, the drawn shapes' inside their top-left corner.

import { $ } from "../lib/dom.js";
import { area, drawHandles } from "../lib/edit.js";
import { caption, maskImage, svg } from "../lib/regions.js";
import { liveBox } from "./box.js";
import { clearMask, liveBrush, maskArea } from "./brush.js";
import { livePolygon } from "./polygon.js";
import { select } from "./select.js";
import {
  chooseClass,
  deleteShape,
  describeAnnotation,
  describeArea,
  toggleHidden,
  toggleMaskHidden,
} from "./shapes.js";
import { REVIEW, colourOf, current, elements, registerPainters, state } from "./state.js";

const KEYED_CLASSES = 9;
const REFERENCE_COLOUR = "#f5f5f7";
const NO_DEFECT_COLOUR = "#8e8e93";
let maskIds = 0;

// The class list of the task (its station's classes), each with its colour and key.
export function setClasses(classes) {
  if (classes && classes.join("\n") !== state.classes.join("\n")) state.classes = [...classes];
  if (state.classIndex >= state.classes.length) state.classIndex = 0;
  const list = $("classes");
  list.replaceChildren();
  state.classes.forEach((name, index) => {
    const item = document.createElement("li");
    item.dataset.class = name;
    item.style.setProperty("--colour", colourOf(name));
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    item.append(swatch);
    if (index < KEYED_CLASSES) {
      const key = document.createElement("kbd");
      key.textContent = String(index + 1);
      item.append(key, " ");
    }
    item.append(name);
    item.addEventListener("click", () => chooseClass(index));
    list.append(item);
  });
  renderClasses();
}

function renderClasses() {
  document.querySelectorAll("#classes li").forEach((item, index) => {
    item.classList.toggle("on", index === state.classIndex);
  });
}

function maskOverlay(url, colour, className) {
  const task = current().task;
  const id = `mask-${++maskIds}`;
  const mask = svg("mask", { id, maskUnits: "userSpaceOnUse", x: 0, y: 0, width: task.width, height: task.height });
  mask.append(svg("image", { href: url, x: 0, y: 0, width: task.width, height: task.height, preserveAspectRatio: "none" }));
  const group = svg("g", { class: className });
  group.style.setProperty("--colour", colour);
  group.append(mask, svg("rect", { x: 0, y: 0, width: task.width, height: task.height, mask: `url(#${id})`, class: "mask-fill" }));
  return group;
}

function outline(kind, geometry, className, colour, text, place = "inside") {
  const group = svg("g", { class: className });
  group.style.setProperty("--colour", colour);
  let anchor;
  if (kind === "box") {
    group.append(svg("rect", { x: geometry.x, y: geometry.y, width: geometry.width, height: geometry.height }));
    anchor = [geometry.x, place === "below" ? geometry.y + geometry.height : geometry.y];
  } else {
    const points = geometry.points;
    group.append(svg("polygon", { points: points.map((p) => p.join(",")).join(" ") }));
    const lowest = place === "below";
    anchor = points.reduce((best, p) => ((lowest ? p[1] > best[1] : p[1] < best[1]) ? p : best), points[0]);
  }
  if (text) group.append(caption(anchor[0], anchor[1], text, place));
  return group;
}

function annotationElement(annotation, className, colour, place) {
  if (annotation.kind === "box" || annotation.kind === "polygon") {
    return outline(annotation.kind, annotation.geometry, className, colour, annotation.label, place);
  }
  if (annotation.kind === "mask" && annotation.mask_url) {
    return maskOverlay(annotation.mask_url, colour, `${className} mask`);
  }
  return null;
}

// The whole overlay and the list of shapes.
function render() {
  const overlay = elements.overlay;
  overlay.replaceChildren();
  const entry = current();
  if (!entry) return;
  const task = entry.task;
  const reference = svg("g", { id: "layer-reference" });
  if (state.showReference) {
    for (const annotation of task.current) {
      const element = annotationElement(annotation, "region current", REFERENCE_COLOUR, "below");
      if (element) reference.append(element);
    }
    if (task.model) {
      task.model.regions.forEach((region, index) => {
        if (state.acceptedRegions.has(index)) return;
        const colour = colourOf(region.label);
        const text = `${region.label} ${Number(region.score).toFixed(2)}`;
        const element = outline("box", region, "region model", colour, text, "above");
        const mask = maskImage(region, colour);
        if (mask) element.prepend(mask);
        element.dataset.region = index;
        reference.append(element);
      });
    }
  }
  if (REVIEW && !state.editing) {
    for (const annotation of entry.submission.annotations) {
      const element = annotationElement(annotation, "shape submitted", colourOf(annotation.label));
      if (element) reference.append(element);
    }
  }
  const shapes = svg("g", { id: "layer-shapes" });
  for (const shape of state.shapes) {
    if (shape.kind === "class" || shape.hidden) continue; // the whole image: in the list only
    const selected = shape === state.selected ? " selected" : "";
    shapes.append(outline(shape.kind, shape.geometry, `shape ${shape.kind}${selected}`, colourOf(shape.label), shape.label));
  }
  const chosen = state.selected;
  if (state.editing && chosen && !chosen.hidden && (chosen.kind === "box" || chosen.kind === "polygon")) {
    drawHandles(shapes, chosen.kind, chosen.geometry, colourOf(chosen.label), state.vertex);
  }
  overlay.append(reference, shapes, svg("g", { id: "layer-live" }));
  renderLive();
  renderShapes();
}

// Only the live layer: what the mouse is doing with the tool in hand.
function renderLive() {
  const live = elements.overlay.querySelector("#layer-live");
  if (!live || !current()) return;
  live.replaceChildren();
  const colour = state.classes[state.classIndex] ? colourOf(state.classes[state.classIndex]) : "#fff";
  liveBox(live, colour);
  livePolygon(live, colour);
  liveBrush(live, colour);
}

// The side panel's list: the shapes drawn (or, reviewing, the label's), each selectable and
// deletable.
function renderShapes() {
  const list = $("shapes");
  list.replaceChildren();
  const entry = current();
  if (!entry) return;
  const row = (colour, text, { onSelect, onDelete, onHide, hidden, selected } = {}) => {
    const item = document.createElement("li");
    item.style.setProperty("--colour", colour);
    item.classList.toggle("selected", Boolean(selected));
    item.classList.toggle("hidden-shape", Boolean(hidden));
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    const label = document.createElement("span");
    label.className = "what";
    label.textContent = text;
    item.append(swatch, label);
    if (onSelect) item.addEventListener("click", onSelect);
    const button = (className, title, textContent, onClick) => {
      const element = document.createElement("button");
      element.type = "button";
      element.className = className;
      element.title = title;
      element.textContent = textContent;
      element.addEventListener("click", (event) => {
        event.stopPropagation();
        element.blur();
        onClick();
      });
      item.append(element);
    };
    if (onHide) button("eye", hidden ? "show" : "hide (still sent)", hidden ? "show" : "hide", onHide);
    if (onDelete) button("remove", "delete", "×", onDelete);
    list.append(item);
  };
  if (REVIEW && !state.editing) {
    const submission = entry.submission;
    if (submission.no_defect) row(NO_DEFECT_COLOUR, "no defect");
    for (const annotation of submission.annotations) {
      if (annotation.kind === "no_defect") continue;
      row(colourOf(annotation.label), describeAnnotation(annotation));
    }
    return;
  }
  for (const shape of state.shapes) {
    const whole = shape.kind === "class";
    const text = whole ? describeAnnotation(shape) : `${describeAnnotation(shape)} · ${describeArea(area(shape.kind, shape.geometry))}`;
    row(colourOf(shape.label), text, {
      onSelect: whole ? null : () => select(shape.hidden ? null : shape),
      onDelete: () => deleteShape(shape),
      onHide: whole ? null : () => toggleHidden(shape),
      hidden: shape.hidden,
      selected: shape === state.selected,
    });
  }
  state.masks.forEach((canvas, classIndex) => {
    if (!canvas) return;
    const painted = maskArea(canvas);
    if (!painted) return;
    const label = state.classes[classIndex];
    const selected = state.selected && state.selected.kind === "mask" && state.selected.classIndex === classIndex;
    row(colourOf(label), `${label} brush mask · ${describeArea(painted)}`, {
      onSelect: () => select({ kind: "mask", classIndex }),
      onDelete: () => clearMask(classIndex),
      onHide: () => toggleMaskHidden(classIndex),
      hidden: canvas.hidden,
      selected,
    });
  });
  if (!list.children.length) {
    const empty = document.createElement("li");
    empty.className = "muted";
    empty.textContent = "none yet";
    list.append(empty);
  }
}

registerPainters({ all: render, live: renderLive, list: renderShapes, classes: renderClasses });
