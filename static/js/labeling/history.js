// The undo stack of the drawing: one step per change, undone in reverse order (Z, Ctrl+Z).
//
// Steps: {type: "add", shapes, regions} (shapes drawn or taken, the model's region indexes they
// took), {type: "delete", shape, index}, {type: "relabel", shape, label} (its label before),
// {type: "paint", classIndex, x, y, patch} (the rectangle of a class's mask as it was before,
// a canvas) and {type: "group", steps} (several as one).

import { say } from "../lib/format.js";
import { render, state } from "./state.js";

const UNDO_LIMIT = 200;
let steps = [];

export function pushUndo(step) {
  steps.push(step);
  if (steps.length > UNDO_LIMIT) steps.shift();
}

export function clearHistory() {
  steps = [];
}

function undoStep(step) {
  if (step.type === "add") {
    state.shapes = state.shapes.filter((shape) => !step.shapes.includes(shape));
    for (const index of step.regions) state.acceptedRegions.delete(index);
    if (step.shapes.includes(state.selected)) state.selected = null;
  } else if (step.type === "delete") {
    state.shapes.splice(step.index, 0, step.shape);
  } else if (step.type === "relabel") {
    step.shape.label = step.label;
  } else if (step.type === "paint") {
    const canvas = state.masks[step.classIndex];
    if (canvas) {
      const context = canvas.getContext("2d");
      context.globalCompositeOperation = "source-over";
      context.clearRect(step.x, step.y, step.patch.width, step.patch.height);
      context.drawImage(step.patch, step.x, step.y);
    }
  } else if (step.type === "group") {
    for (const inner of [...step.steps].reverse()) undoStep(inner);
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
  undoStep(step);
  render();
}
