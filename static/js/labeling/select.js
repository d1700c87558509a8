// The selection (V, or a click with the box tool): the shape under a click, or the model's region
// under it (taken as the person's own, shapes.js); what Backspace and Delete remove.

import { say } from "../lib/format.js";
import { clearMask } from "./brush.js";
import { removePolygonPoint } from "./polygon.js";
import { acceptModelRegions, deleteShape } from "./shapes.js";
import { current, render, renderClasses, state, view } from "./state.js";

const HIT_SCREEN_PIXELS = 4; // a click this near a box's edge hits it

function hitsBox(box, point, slack) {
  return (
    point.x >= box.x - slack && point.x <= box.x + box.width + slack &&
    point.y >= box.y - slack && point.y <= box.y + box.height + slack
  );
}

function insidePolygon(points, point) {
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

function shapeAt(point) {
  const slack = HIT_SCREEN_PIXELS / view.zoom;
  for (const shape of [...state.shapes].reverse()) {
    if (shape.kind === "box" && hitsBox(shape.geometry, point, slack)) return shape;
    if (shape.kind === "polygon" && insidePolygon(shape.geometry.points, point)) return shape;
  }
  return null;
}

// The index of the model's region (not taken yet, shown) under the point, or -1.
function modelRegionAt(point) {
  const model = current() && current().task.model;
  if (!model || !state.showReference) return -1;
  const slack = HIT_SCREEN_PIXELS / view.zoom;
  for (let index = model.regions.length - 1; index >= 0; index--) {
    if (!state.acceptedRegions.has(index) && hitsBox(model.regions[index], point, slack)) return index;
  }
  return -1;
}

// A click without a drag: take the model's region under it, or select the shape under it.
// Whether it hit something.
export function clickAt(point) {
  const region = modelRegionAt(point);
  if (region >= 0) {
    acceptModelRegions([region]);
    return true;
  }
  const shape = shapeAt(point);
  if (shape || state.selected) select(shape);
  return Boolean(shape);
}

// Select a shape, a class's mask ({kind: "mask", classIndex}: its class becomes the chosen one),
// or nothing (null).
export function select(shape) {
  state.selected = shape;
  if (shape && shape.kind === "mask") {
    state.classIndex = shape.classIndex;
    renderClasses();
  }
  render();
}

// Backspace / Delete: the polygon's last point, the selected shape or mask, else the last shape.
export function deleteSelectedOrLast() {
  if (!state.editing) return;
  if (state.polygon) {
    removePolygonPoint();
    return;
  }
  const selected = state.selected;
  if (selected && selected.kind === "mask") {
    clearMask(selected.classIndex);
  } else if (selected) {
    deleteShape(selected);
  } else if (state.shapes.length) {
    deleteShape(state.shapes[state.shapes.length - 1]);
  } else {
    say("No shape to delete (a brush mask is cleared from the list, or rubbed out with E).");
  }
}
