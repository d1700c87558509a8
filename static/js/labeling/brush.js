// The brush (R) and its eraser (E): masks painted per class; the eraser rubs out any class's.
//
// One canvas per class at the image's resolution (in the stage's #masks layer); painted pixels
// are opaque in the class colour. Undo keeps only the rectangle a stroke touched, copied from a
// copy of each canvas taken before it. The label sends each class's mask as a PNG, white where
// painted.

import { say } from "../lib/format.js";
import { hasMask, paintMask, svg } from "../lib/regions.js";
import { pushUndo } from "./history.js";
import { colourOf, current, elements, render, renderShapes, state } from "./state.js";

const snapshot = document.createElement("canvas");

// The class's mask canvas, made (empty) on first use.
function maskCanvas(classIndex) {
  let canvas = state.masks[classIndex];
  if (!canvas) {
    const task = current().task;
    canvas = document.createElement("canvas");
    canvas.width = task.width;
    canvas.height = task.height;
    canvas.className = "mask-canvas";
    canvas.dataset.class = state.classes[classIndex];
    canvas.style.setProperty("--colour", colourOf(state.classes[classIndex]));
    state.masks[classIndex] = canvas;
    elements.masks.append(canvas);
    renderShapes();
  }
  return canvas;
}

// No mask canvases (a new task, a discarded fix).
export function dropMasks() {
  state.masks = [];
  elements.masks.replaceChildren();
}

function takeSnapshot(canvas) {
  snapshot.width = canvas.width;
  snapshot.height = canvas.height;
  const context = snapshot.getContext("2d");
  context.clearRect(0, 0, snapshot.width, snapshot.height);
  context.drawImage(canvas, 0, 0);
}

function patchFromSnapshot(x, y, width, height) {
  const patch = document.createElement("canvas");
  patch.width = Math.max(1, width);
  patch.height = Math.max(1, height);
  patch.getContext("2d").drawImage(snapshot, x, y, patch.width, patch.height, 0, 0, patch.width, patch.height);
  return patch;
}

// The undo step restoring the whole canvas as it is now.
function wholeCanvasStep(classIndex, canvas) {
  takeSnapshot(canvas);
  return { type: "paint", classIndex, x: 0, y: 0, patch: patchFromSnapshot(0, 0, canvas.width, canvas.height) };
}

// A stroke paints the chosen class's mask; the eraser rubs out every class's paint under it.
export function strokeBegin(point) {
  const eraser = state.eraser;
  // a hidden mask is left alone by the eraser
  const indexes = eraser
    ? state.masks.map((canvas, index) => (canvas && !canvas.hidden ? index : -1)).filter((index) => index >= 0)
    : [state.classIndex];
  if (!indexes.length) {
    say("Nothing to erase: no brush mask is painted (or shown).");
    return;
  }
  const targets = indexes.map((classIndex) => {
    const canvas = maskCanvas(classIndex);
    const before = document.createElement("canvas");
    before.width = canvas.width;
    before.height = canvas.height;
    before.getContext("2d").drawImage(canvas, 0, 0);
    return { classIndex, canvas, before };
  });
  state.gesture = {
    kind: "stroke",
    eraser,
    targets,
    last: point,
    box: { x1: point.x, y1: point.y, x2: point.x, y2: point.y },
  };
  paint(point, point);
}

export function strokeMove(point) {
  paint(state.gesture.last, point);
}

function paint(from, to) {
  const gesture = state.gesture;
  for (const { classIndex, canvas } of gesture.targets) {
    const context = canvas.getContext("2d");
    context.globalCompositeOperation = gesture.eraser ? "destination-out" : "source-over";
    const colour = colourOf(state.classes[classIndex]);
    context.strokeStyle = colour;
    context.fillStyle = colour;
    context.lineWidth = state.brushSize;
    context.lineCap = "round";
    context.lineJoin = "round";
    context.beginPath();
    if (from.x === to.x && from.y === to.y) {
      context.arc(to.x, to.y, state.brushSize / 2, 0, 2 * Math.PI);
      context.fill();
    } else {
      context.moveTo(from.x, from.y);
      context.lineTo(to.x, to.y);
      context.stroke();
    }
    canvas.area = null;
  }
  const box = gesture.box;
  box.x1 = Math.min(box.x1, to.x);
  box.y1 = Math.min(box.y1, to.y);
  box.x2 = Math.max(box.x2, to.x);
  box.y2 = Math.max(box.y2, to.y);
  gesture.last = to;
}

// One undo step for the stroke: the rectangle it touched, in each mask it painted or erased.
export function strokeEnd(gesture) {
  const reach = state.brushSize / 2 + 2;
  const steps = [];
  for (const { classIndex, canvas, before } of gesture.targets) {
    const x = Math.max(0, Math.floor(gesture.box.x1 - reach));
    const y = Math.max(0, Math.floor(gesture.box.y1 - reach));
    const x2 = Math.min(canvas.width, Math.ceil(gesture.box.x2 + reach));
    const y2 = Math.min(canvas.height, Math.ceil(gesture.box.y2 + reach));
    if (x2 <= x || y2 <= y) continue;
    const patch = document.createElement("canvas");
    patch.width = x2 - x;
    patch.height = y2 - y;
    patch.getContext("2d").drawImage(before, x, y, patch.width, patch.height, 0, 0, patch.width, patch.height);
    steps.push({ type: "paint", classIndex, x, y, patch });
  }
  if (steps.length === 1) pushUndo(steps[0]);
  else if (steps.length) pushUndo({ type: "group", steps });
  render();
}

// The painted pixels of a class's mask (counted once per change).
export function maskArea(canvas) {
  if (canvas.area === null || canvas.area === undefined) {
    const data = canvas.getContext("2d", { willReadFrequently: true }).getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] >= 128) painted++;
    canvas.area = painted;
  }
  return canvas.area;
}

export function clearMask(classIndex) {
  const canvas = state.masks[classIndex];
  if (!canvas) return;
  pushUndo(wholeCanvasStep(classIndex, canvas));
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  canvas.area = null;
  if (state.selected && state.selected.kind === "mask") state.selected = null;
  say(`Cleared the ${state.classes[classIndex]} brush mask (Z brings it back).`);
  render();
}

// A model region's mask painted into its class's mask; the undo step, or null when the region
// has no (usable) mask.
export function paintRegion(region, label) {
  if (!hasMask(region)) return null;
  const classIndex = state.classes.indexOf(label);
  const canvas = maskCanvas(classIndex);
  const x = Math.max(0, Math.floor(region.x));
  const y = Math.max(0, Math.floor(region.y));
  const x2 = Math.min(canvas.width, Math.ceil(region.x + region.width));
  const y2 = Math.min(canvas.height, Math.ceil(region.y + region.height));
  if (x2 <= x || y2 <= y) return null;
  takeSnapshot(canvas);
  const step = { type: "paint", classIndex, x, y, patch: patchFromSnapshot(x, y, x2 - x, y2 - y) };
  canvas.area = null;
  return paintMask(canvas.getContext("2d"), region, colourOf(label)) ? step : null;
}

// A stored mask (white where the defect is) painted into its class's canvas; the undo step.
export async function maskLoad(annotation) {
  const picture = new Image();
  picture.src = annotation.mask_url;
  try {
    await picture.decode();
  } catch (error) {
    say(`The ${annotation.label} mask could not be loaded.`, true);
    return null;
  }
  const classIndex = state.classes.indexOf(annotation.label);
  const canvas = maskCanvas(classIndex);
  const step = wholeCanvasStep(classIndex, canvas);
  const scratch = document.createElement("canvas");
  scratch.width = canvas.width;
  scratch.height = canvas.height;
  const context = scratch.getContext("2d", { willReadFrequently: true });
  context.drawImage(picture, 0, 0, canvas.width, canvas.height);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
  const [red, green, blue] = rgb(colourOf(annotation.label));
  const data = pixels.data;
  for (let i = 0; i < data.length; i += 4) {
    const painted = data[i] > 0 && data[i + 3] > 0;
    data[i] = red;
    data[i + 1] = green;
    data[i + 2] = blue;
    data[i + 3] = painted ? 255 : 0;
  }
  context.putImageData(pixels, 0, 0);
  const target = canvas.getContext("2d");
  target.globalCompositeOperation = "source-over";
  target.drawImage(scratch, 0, 0);
  canvas.area = null;
  return step;
}

function rgb(hex) {
  const value = parseInt(hex.slice(1), 16);
  return [(value >> 16) & 255, (value >> 8) & 255, value & 255];
}

// The class's mask as a PNG data URL (white, opaque where painted), or null when nothing is.
// Half-transparent brush edges count as painted from half opacity on.
export function maskPng(canvas) {
  const scratch = document.createElement("canvas");
  scratch.width = canvas.width;
  scratch.height = canvas.height;
  const context = scratch.getContext("2d", { willReadFrequently: true });
  context.drawImage(canvas, 0, 0);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
  const data = pixels.data;
  let painted = 0;
  for (let i = 0; i < data.length; i += 4) {
    const on = data[i + 3] >= 128 ? 255 : 0;
    if (on) painted++;
    data[i] = data[i + 1] = data[i + 2] = data[i + 3] = on;
  }
  if (!painted) return null;
  context.putImageData(pixels, 0, 0);
  return scratch.toDataURL("image/png");
}

// The ring of the brush under the mouse.
export function liveBrush(layer, colour) {
  if (!(state.editing && state.tool === "brush" && state.pointer && !state.spaceDown)) return;
  const ring = svg("circle", {
    cx: state.pointer.x,
    cy: state.pointer.y,
    r: state.brushSize / 2,
    class: "brush-ring" + (state.eraser ? " eraser" : ""),
  });
  ring.style.setProperty("--colour", colour);
  layer.append(ring);
}
