// The polygon tool (G): click the corners; a click near the first point, or Enter, closes the
// polygon; Z or Backspace takes back the last point, Esc drops the polygon.

import { say } from "../lib/format.js";
import { svg } from "../lib/regions.js";
import { addShapes } from "./shapes.js";
import { currentLabel, renderLive, state, view } from "./state.js";

const CLOSE_POLYGON_SCREEN_PIXELS = 10; // a click this near the first point closes the polygon
const MIN_POINTS = 3;

export function polygonClick(point, event) {
  if (state.polygon && state.polygon.length >= MIN_POINTS) {
    const [fx, fy] = state.polygon[0];
    const first = view.screenPoint(fx, fy);
    if (Math.hypot(event.clientX - first.x, event.clientY - first.y) <= CLOSE_POLYGON_SCREEN_PIXELS) {
      closePolygon();
      return;
    }
  }
  const clamped = view.clamp(point);
  if (!state.polygon) state.polygon = [];
  const last = state.polygon[state.polygon.length - 1];
  if (!last || last[0] !== clamped[0] || last[1] !== clamped[1]) state.polygon.push(clamped);
  renderLive();
}

// The polygon being drawn becomes a shape; false (and a warning) when it has too few points.
export function closePolygon() {
  if (!state.polygon) return false;
  if (state.polygon.length < MIN_POINTS) {
    say(`A polygon needs at least ${MIN_POINTS} points (Esc cancels it).`, true);
    return false;
  }
  const points = state.polygon;
  state.polygon = null;
  addShapes([{ kind: "polygon", label: currentLabel(), geometry: { points } }]);
  return true;
}

export function cancelPolygon() {
  state.polygon = null;
  renderLive();
}

export function removePolygonPoint() {
  state.polygon.pop();
  if (!state.polygon.length) state.polygon = null;
  renderLive();
}

// The corners so far, a line to the mouse, and the first corner to click to close it.
export function livePolygon(layer, colour) {
  if (!state.polygon) return;
  const points = state.pointer ? [...state.polygon, view.clamp(state.pointer)] : state.polygon;
  const line = svg("polyline", { points: points.map((p) => p.join(",")).join(" "), class: "polygon-drawing" });
  line.style.setProperty("--colour", colour);
  const first = svg("circle", { cx: state.polygon[0][0], cy: state.polygon[0][1], class: "polygon-start" });
  first.style.setProperty("--colour", colour);
  layer.append(line, first);
}
