// The selection (V, or a click with the box tool) and editing what is selected: the shape under
// a click, or the model's region under it (taken as the person's own, shapes.js). A selected
// box shows 8 handles that resize it, a selected polygon its vertices: drag one to move it, press
// an edge to add one, Delete (or a right click on it) removes one; dragging a shape's body moves
// it (lib/edit.js, shared with the station page). Each edit is one undo step. What Backspace and
// Delete remove.

import { dragBegin, dragChanged, dragMove, grab, MIN_POLYGON_POINTS, removeVertex, copyGeometry } from "../lib/edit.js";
import { say } from "../lib/format.js";
import { clearMask } from "./brush.js";
import { pushUndo } from "./history.js";
import { removePolygonPoint } from "./polygon.js";
import { acceptModelRegions, deleteShape } from "./shapes.js";
import { current, render, renderClasses, state, view } from "./state.js";

const HIT_SCREEN_PIXELS = 4; // a click this near a box's edge hits it

const editable = (shape) => shape && (shape.kind === "box" || shape.kind === "polygon") && !shape.hidden;

function shapeAt(point) {
  for (const shape of [...state.shapes].reverse()) {
    if (editable(shape) && grab(shape.kind, shape.geometry, point, view.zoom, { handles: false })) return shape;
  }
  return null;
}

function hitsBox(box, point, slack) {
  return (
    point.x >= box.x - slack && point.x <= box.x + box.width + slack &&
    point.y >= box.y - slack && point.y <= box.y + box.height + slack
  );
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
  if (shape !== state.selected) state.vertex = null;
  state.selected = shape;
  if (shape && shape.kind === "mask") {
    state.classIndex = shape.classIndex;
    renderClasses();
  }
  render();
}

// --- editing -----------------------------------------------------------------------------------
function startEdit(shape, grabbed, point) {
  const before = copyGeometry(shape.kind, shape.geometry);
  const size = { width: current().task.width, height: current().task.height };
  state.gesture = { kind: "edit", shape, before, drag: dragBegin(shape.kind, shape.geometry, grabbed, point, size) };
  state.vertex = state.gesture.drag.part.part === "vertex" ? state.gesture.drag.part.index : null;
  if (state.selected !== shape) state.selected = shape;
  render();
}

// A press on the selected shape's handle, vertex or edge begins editing it (any tool but the
// brush); with `body` (the select tool) so does a press on any shape's body, which selects it.
// Whether an edit began.
export function editBegin(point, { body }) {
  const selected = state.selected;
  if (editable(selected)) {
    const grabbed = grab(selected.kind, selected.geometry, point, view.zoom);
    if (grabbed && (body || grabbed.part !== "body")) {
      startEdit(selected, grabbed, point);
      return true;
    }
  }
  if (!body) return false;
  const shape = shapeAt(point);
  if (!shape) return false;
  startEdit(shape, { part: "body" }, point);
  return true;
}

export function editMove(point) {
  dragMove(state.gesture.drag, point);
  render();
}

export function editEnd(gesture) {
  if (dragChanged(gesture.drag)) pushUndo({ type: "geometry", shape: gesture.shape, geometry: gesture.before });
  render();
}

// Esc while dragging: the shape goes back. False when nothing was being edited.
export function editCancel() {
  const gesture = state.gesture;
  if (!gesture || gesture.kind !== "edit") return false;
  state.gesture = null;
  const { shape, before } = gesture;
  if (shape.kind === "box") Object.assign(shape.geometry, before);
  else shape.geometry.points = before.points;
  state.vertex = null;
  render();
  return true;
}

// Remove the selected polygon's vertex `index` (one undo step); never below 3.
export function deleteVertex(index) {
  const shape = state.selected;
  if (!editable(shape) || shape.kind !== "polygon") return false;
  const before = copyGeometry(shape.kind, shape.geometry);
  if (!removeVertex(shape.geometry, index)) {
    say(`A polygon keeps at least ${MIN_POLYGON_POINTS} points (delete the shape instead).`, true);
    return true;
  }
  pushUndo({ type: "geometry", shape, geometry: before });
  state.vertex = null;
  render();
  return true;
}

// A right click on a vertex of the selected polygon removes it; whether it was on one.
export function contextAt(point) {
  const shape = state.selected;
  if (!state.editing || !editable(shape) || shape.kind !== "polygon") return false;
  const grabbed = grab(shape.kind, shape.geometry, point, view.zoom);
  if (!grabbed || grabbed.part !== "vertex") return false;
  return deleteVertex(grabbed.index);
}

// Backspace / Delete: the polygon's last point, the chosen vertex, the selected shape or mask,
// else the last shape.
export function deleteSelectedOrLast() {
  if (!state.editing) return;
  if (state.polygon) {
    removePolygonPoint();
    return;
  }
  const selected = state.selected;
  if (selected && selected.kind === "polygon" && state.vertex !== null) {
    deleteVertex(state.vertex);
  } else if (selected && selected.kind === "mask") {
    clearMask(selected.classIndex);
  } else if (selected) {
    deleteShape(selected);
  } else if (state.shapes.length) {
    deleteShape(state.shapes[state.shapes.length - 1]);
  } else {
    say("No shape to delete (a brush mask is cleared from the list, or rubbed out with E).");
  }
}
