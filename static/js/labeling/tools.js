// The tool in hand (B box, G polygon, R brush, E eraser, V select), the brush's size, and
// whether the page edits at all (reviewing a label shows it; F starts fixing it).

import { $ } from "../lib/dom.js";
import { cancelPolygon } from "./polygon.js";
import { REVIEW, elements, renderLive, root, state } from "./state.js";

const MIN_BRUSH = 1;
const MAX_BRUSH = 400;

export function setEditing(editing) {
  state.editing = editing;
  root.classList.toggle("editing", editing);
  $("shapes-title").textContent = REVIEW && !editing ? "Their shapes" : "Your shapes";
  if (REVIEW) $("fix-banner").hidden = !editing;
  renderTools();
}

// E toggles the eraser of the brush; the other tools are chosen as they are.
export function setTool(tool) {
  if (!state.editing) return;
  if (tool !== "polygon" && state.polygon) cancelPolygon();
  if (tool === "eraser") {
    const erasing = state.tool === "brush" && state.eraser;
    state.tool = "brush";
    state.eraser = !erasing;
  } else {
    state.tool = tool;
    state.eraser = false;
  }
  renderTools();
  renderLive();
}

export function activeTool() {
  return state.tool === "brush" && state.eraser ? "eraser" : state.tool;
}

export function renderTools() {
  const active = activeTool();
  document.querySelectorAll("button[data-tool]").forEach((button) => {
    button.classList.toggle("on", button.dataset.tool === active);
  });
  elements.viewport.dataset.tool = state.editing ? active : "view";
  $("brush-size").textContent = String(state.brushSize);
}

export function resizeBrush(factor) {
  const size = Math.round(state.brushSize * factor);
  const next = size === state.brushSize ? size + Math.sign(factor - 1) : size;
  state.brushSize = Math.min(MAX_BRUSH, Math.max(MIN_BRUSH, next));
  renderTools();
  renderLive();
}
