// The drawing as a whole: shapes added, deleted, relabelled and hidden (each one undo step,
// history.js), the whole image's class,
// the model's regions and the current label taken into it, the label it makes for the API, and
// annotations in words.

import { say } from "../lib/format.js";
import { dropMasks, maskLoad, maskPng, paintRegion } from "./brush.js";
import { clearHistory, pushUndo } from "./history.js";
import { current, currentLabel, render, renderClasses, state, view } from "./state.js";

// --- in words --------------------------------------------------------------------------------
// "crack box ×2, scratch (whole image)" or "no defect".
export function summarize(annotations) {
  if (!annotations.length) return "none";
  if (annotations.some((a) => a.kind === "no_defect")) return "no defect";
  const words = { box: "box", polygon: "polygon", mask: "mask", class: "(whole image)" };
  const counts = new Map();
  for (const annotation of annotations) {
    const key = `${annotation.label} ${words[annotation.kind] || annotation.kind}`;
    counts.set(key, (counts.get(key) || 0) + 1);
  }
  return [...counts].map(([key, n]) => (n > 1 ? `${key} ×${n}` : key)).join(", ");
}

// A shape's area in image pixels, in words ("1.2k px²").
export function describeArea(pixels) {
  const rounded = Math.round(pixels);
  return rounded >= 10000 ? `${(rounded / 1000).toFixed(1)}k px²` : `${rounded} px²`;
}

export function describeAnnotation(annotation) {
  const g = annotation.geometry || {};
  if (annotation.kind === "box") {
    return `${annotation.label} box at ${Math.round(g.x)},${Math.round(g.y)} (${Math.round(g.width)}×${Math.round(g.height)})`;
  }
  if (annotation.kind === "polygon") return `${annotation.label} polygon, ${g.points.length} points`;
  if (annotation.kind === "mask") return `${annotation.label} brush mask`;
  if (annotation.kind === "class") return `${annotation.label} (whole image)`;
  return annotation.label || annotation.kind;
}

// --- changes -------------------------------------------------------------------------------
// Nothing drawn: a new task, or a fix discarded.
export function resetDrawing() {
  state.shapes = [];
  dropMasks();
  state.selected = null;
  state.vertex = null;
  state.polygon = null;
  state.gesture = null;
  clearHistory();
  state.acceptedRegions = new Set();
  state.noDefectArmed = null;
}

// New shapes (and model regions taken, with the paint steps that took their masks): one undo.
export function addShapes(shapes, regions = [], paintSteps = []) {
  state.shapes.push(...shapes);
  for (const index of regions) state.acceptedRegions.add(index);
  const step = { type: "add", shapes, regions };
  pushUndo(paintSteps.length ? { type: "group", steps: [...paintSteps, step] } : step);
  state.selected = null;
  render();
}

export function deleteShape(shape) {
  const index = state.shapes.indexOf(shape);
  if (index < 0) return;
  state.shapes.splice(index, 1);
  pushUndo({ type: "delete", shape, index });
  if (state.selected === shape) state.selected = null;
  render();
}

// The eye in the list: a shape (or a class's mask) hidden from the overlay, or shown again. A
// hidden shape is still part of the label.
export function toggleHidden(shape) {
  shape.hidden = !shape.hidden;
  pushUndo({ type: "hide", shape });
  if (shape.hidden && state.selected === shape) state.selected = null;
  render();
}

export function toggleMaskHidden(classIndex) {
  const canvas = state.masks[classIndex];
  if (!canvas) return;
  canvas.hidden = !canvas.hidden;
  pushUndo({ type: "hide", classIndex });
  render();
}

// W: the chosen class (or A: the model's, when it found no region) for the whole image ("stain, whole image"), without drawing; a label of
// its own, or beside regions of other classes.
export function addWholeImage(label = currentLabel()) {
  if (!state.editing || !current()) return;
  if (state.shapes.some((shape) => shape.kind === "class" && shape.label === label)) {
    say(`The whole image is ${label} already.`);
    return;
  }
  addShapes([{ kind: "class", label, geometry: {} }]);
  say(`${label}, whole image: Enter sends it.`);
}

// 1–9: the class of what is drawn next, and of the selected shape (one undo step).
export function chooseClass(index) {
  if (index >= state.classes.length) return;
  state.classIndex = index;
  const label = state.classes[index];
  const shape = state.selected;
  if (state.editing && shape && shape.kind !== "mask" && shape.label !== label) {
    pushUndo({ type: "relabel", shape, label: shape.label });
    shape.label = label;
  }
  renderClasses();
  render();
}

// --- the model's regions ------------------------------------------------------------------
function regionLabel(region) {
  return state.classes.includes(region.label) ? region.label : currentLabel();
}

function regionAsBox(region) {
  const box = view.box({ x: region.x, y: region.y }, { x: region.x + region.width, y: region.y + region.height });
  return { kind: "box", label: regionLabel(region), geometry: box };
}

function describeTaken(boxes, masks) {
  const what = (count, one) => (count === 1 ? `1 ${one}` : `${count} ${one}s`);
  const parts = [];
  if (boxes) parts.push(`${what(boxes, "model region")} as ${boxes === 1 ? "a box" : "boxes"}`);
  if (masks) parts.push(`${what(masks, "model mask")} as brush paint`);
  return parts.join(" and ");
}

// Take the model's regions (by index) as the person's own: a region with a mask as that mask (a
// brush mask of its class), the others as boxes.
export function acceptModelRegions(indexes) {
  const model = current() && current().task.model;
  if (!state.editing || !model) {
    if (current() && !model) say("The model has no proposal for this unit.");
    return;
  }
  const open = indexes.filter((index) => !state.acceptedRegions.has(index));
  if (!open.length) {
    say(model.regions.length ? "The model's regions are taken already." : "The model found no region on this unit.");
    return;
  }
  const boxes = [];
  const paintSteps = [];
  for (const index of open) {
    const region = model.regions[index];
    const painted = paintRegion(region, regionLabel(region));
    if (painted) paintSteps.push(painted);
    else boxes.push(regionAsBox(region));
  }
  addShapes(boxes, open, paintSteps);
  say(`Took ${describeTaken(boxes.length, paintSteps.length)}.`);
}

// A: all the model's regions; a fail without regions, its class for the whole image.
export function acceptAllModelRegions() {
  const model = current() && current().task.model;
  if (model && !model.regions.length && model.verdict === "fail" && state.classes.includes(model.label)) {
    addWholeImage(model.label);
    return;
  }
  acceptModelRegions(model ? model.regions.map((_, index) => index) : []);
}

// --- existing labels ------------------------------------------------------------------------
// Copy annotations (the current label, or the label under review) into the editable drawing;
// how many were copied.
export async function loadAnnotations(annotations, { undoable }) {
  const shapes = [];
  const steps = [];
  const masks = [];
  for (const annotation of annotations) {
    if (!state.classes.includes(annotation.label)) continue;
    if (annotation.kind === "box" || annotation.kind === "polygon") {
      shapes.push({ kind: annotation.kind, label: annotation.label, geometry: structuredClone(annotation.geometry) });
    } else if (annotation.kind === "class") {
      if (shapes.concat(state.shapes).some((s) => s.kind === "class" && s.label === annotation.label)) continue;
      shapes.push({ kind: "class", label: annotation.label, geometry: {} });
    } else if (annotation.kind === "mask" && annotation.mask_url) {
      masks.push(annotation);
    }
  }
  const entry = current();
  for (const annotation of masks) {
    const step = await maskLoad(annotation);
    if (current() !== entry) return 0;
    if (step) steps.push(step);
  }
  state.shapes.push(...shapes);
  if (undoable && shapes.length) steps.push({ type: "add", shapes, regions: [] });
  if (undoable && steps.length) pushUndo({ type: "group", steps });
  render();
  return shapes.length + masks.length;
}

// C: the current label's regions (and its whole-image classes), to start from.
export async function copyCurrentLabel() {
  const entry = current();
  if (!state.editing || !entry) return;
  const drawable = entry.task.current.filter((a) => ["box", "polygon", "mask", "class"].includes(a.kind));
  if (!drawable.length) {
    say(`The current label has no regions to copy (${summarize(entry.task.current)}).`);
    return;
  }
  const copied = await loadAnnotations(drawable, { undoable: true });
  say(`Copied ${copied} region${copied === 1 ? "" : "s"} of the current label.`);
}

// --- the label, as the API takes it ---------------------------------------------------------
export function drawnShapes() {
  const shapes = state.shapes.map((shape) =>
    shape.kind === "class"
      ? { kind: "class", label: shape.label }
      : { kind: shape.kind, label: shape.label, geometry: shape.geometry }
  );
  state.masks.forEach((canvas, classIndex) => {
    if (!canvas) return;
    const mask = maskPng(canvas);
    if (mask) shapes.push({ kind: "mask", label: state.classes[classIndex], mask });
  });
  return shapes;
}

export function hasDrawing() {
  return state.shapes.length > 0 || state.masks.some(Boolean) || Boolean(state.polygon);
}
