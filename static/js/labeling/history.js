// The undo and redo stacks of the drawing: one step per change, undone in reverse order (Z,
// Ctrl+Z) and done again (Ctrl+Shift+Z, Ctrl+Y); a new change drops what was undone.
//
// Steps: {type: "add", shapes, regions} (shapes drawn or taken, the model's region indexes they
// took), {type: "delete", shape, index}, {type: "relabel", shape, label} (its other label),
// {type: "geometry", shape, geometry} (its other geometry: moved, resized, a vertex moved, added
// or removed), {type: "hide", shape} or {type: "hide", classIndex} (a mask), {type: "paint",
// classIndex, x, y, patch} (the other content of a rectangle of a class's mask, a canvas) and
// {type: "group", steps} (several as one). The swapping steps hold the state to swap back to, so
// the same code undoes and redoes them.

import { assignGeometry, copyGeometry } from "../lib/edit.js";
import { say } from "../lib/format.js";
import { render, state } from "./state.js";

const UNDO_LIMIT = 200;
let steps = [];
let undone = [];

export function pushUndo(step) {
  steps.push(step);
  if (steps.length > UNDO_LIMIT) steps.shift();
  undone = [];
}

export function clearHistory() {
  steps = [];
  undone = [];
}

function swapPatch(step) {
  const canvas = state.masks[step.classIndex];
  if (!canvas) return;
  const now = document.createElement("canvas");
  now.width = step.patch.width;
  now.height = step.patch.height;
  now.getContext("2d").drawImage(canvas, step.x, step.y, now.width, now.height, 0, 0, now.width, now.height);
  const context = canvas.getContext("2d");
  context.globalCompositeOperation = "source-over";
  context.clearRect(step.x, step.y, step.patch.width, step.patch.height);
  context.drawImage(step.patch, step.x, step.y);
  canvas.area = null; // counted again when listed
  step.patch = now;
}

function apply(step, backwards) {
  if (step.type === "add") {
    if (backwards) {
      state.shapes = state.shapes.filter((shape) => !step.shapes.includes(shape));
      for (const index of step.regions) state.acceptedRegions.delete(index);
      if (step.shapes.includes(state.selected)) state.selected = null;
    } else {
      state.shapes.push(...step.shapes);
      for (const index of step.regions) state.acceptedRegions.add(index);
    }
  } else if (step.type === "delete") {
    if (backwards) state.shapes.splice(step.index, 0, step.shape);
    else {
      const index = state.shapes.indexOf(step.shape);
      if (index >= 0) state.shapes.splice(index, 1);
      if (state.selected === step.shape) state.selected = null;
    }
  } else if (step.type === "relabel") {
    [step.shape.label, step.label] = [step.label, step.shape.label];
  } else if (step.type === "geometry") {
    const now = copyGeometry(step.shape.kind, step.shape.geometry);
    assignGeometry(step.shape.kind, step.shape.geometry, step.geometry);
    step.geometry = now;
    state.vertex = null;
  } else if (step.type === "hide") {
    if (step.shape) step.shape.hidden = !step.shape.hidden;
    else if (state.masks[step.classIndex]) state.masks[step.classIndex].hidden = !state.masks[step.classIndex].hidden;
  } else if (step.type === "paint") {
    swapPatch(step);
  } else if (step.type === "group") {
    const inner = backwards ? [...step.steps].reverse() : step.steps;
    for (const each of inner) apply(each, backwards);
  }
}

// Z (page.js: a polygon being drawn loses its last point instead).
export function undo() {
  if (!state.editing) return;
  const step = steps.pop();
  if (!step) {
    say("Nothing to undo.");
    return;
  }
  apply(step, true);
  undone.push(step);
  render();
}

// Ctrl+Shift+Z, Ctrl+Y: the last step undone, done again.
export function redo() {
  if (!state.editing) return;
  const step = undone.pop();
  if (!step) {
    say("Nothing to redo.");
    return;
  }
  apply(step, false);
  steps.push(step);
  render();
}
