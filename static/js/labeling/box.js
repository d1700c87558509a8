// The box tool (B): drag a rectangle; a click without a drag takes the model's region under it or
// selects the shape under it (select.js).

import { svg } from "../lib/regions.js";
import { clickAt } from "./select.js";
import { addShapes } from "./shapes.js";
import { currentLabel, renderLive, state, view } from "./state.js";

const MIN_BOX_SCREEN_PIXELS = 4; // a smaller drag is a click

export function boxBegin(point, event) {
  state.gesture = { kind: "box", start: point, to: null, clientX: event.clientX, clientY: event.clientY };
}

export function boxMove(point) {
  state.gesture.to = point;
}

export function boxEnd(gesture, event) {
  const moved = Math.hypot(event.clientX - gesture.clientX, event.clientY - gesture.clientY);
  if (moved < MIN_BOX_SCREEN_PIXELS) {
    clickAt(gesture.start);
    return;
  }
  const box = view.box(gesture.start, view.imagePoint(event));
  if (box.width <= 0 || box.height <= 0) return;
  addShapes([{ kind: "box", label: currentLabel(), geometry: box }]);
}

// Esc while dragging: no box. False when no box was being drawn.
export function boxCancel() {
  if (!state.gesture || state.gesture.kind !== "box") return false;
  state.gesture = null;
  renderLive();
  return true;
}

// The rubber band.
export function liveBox(layer, colour) {
  const gesture = state.gesture;
  if (gesture && gesture.kind === "box" && gesture.to) {
    const group = svg("g", { class: "shape box drawing" });
    group.style.setProperty("--colour", colour);
    const box = view.box(gesture.start, gesture.to);
    group.append(svg("rect", { x: box.x, y: box.y, width: box.width, height: box.height }));
    layer.append(group);
  }
}
