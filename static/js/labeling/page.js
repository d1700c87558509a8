// The labeling page and the review page (one entry module, two modes).
//
// Labeling: claim the most useful task, show its image large with the model's proposal and the
// current label, draw boxes, polygons and brush masks in the station's classes, and send the label
// for review with one key. Review: claim someone else's label, then accept, reject with a comment,
// or fix it with the same tools. The next task is claimed and its image decoded while the person
// works on the current one (lib/claim_ahead.js). Everything drawn is kept in image pixels: the
// stage (image, mask canvases, SVG overlay) is moved and scaled as one (lib/viewport.js).
//
// This module shows a task and routes keys, buttons and the mouse to the tools: box.js,
// polygon.js, brush.js, select.js (selecting and editing); the drawing is shapes.js with its undo history.js, the state
// state.js, what is sent send.js.

import { $ } from "../lib/dom.js";
import { say } from "../lib/format.js";
import { bindKeys, labelButtons, renderHelp } from "../lib/keymap.js";
import { boxBegin, boxCancel, boxEnd, boxMove } from "./box.js";
import { strokeBegin, strokeEnd, strokeMove } from "./brush.js";
import { refreshFigures, refreshFiguresEvery } from "./figures.js";
import { redo, undo } from "./history.js";
import { cancelPolygon, closePolygon, polygonClick, removePolygonPoint } from "./polygon.js";
import { setClasses } from "./render.js";
import { clickAt, contextAt, deleteSelectedOrLast, editBegin, editCancel, editEnd, editMove, select } from "./select.js";
import { cancelFix, closeReject, openReject, review, saveFix, sendReject, startFix, submitLabel } from "./send.js";
import { acceptAllModelRegions, addWholeImage, chooseClass, copyCurrentLabel, resetDrawing, summarize } from "./shapes.js";
import { REVIEW, current, elements, queue, render, renderLive, renderShapes, state, view } from "./state.js";
import { activeTool, renderTools, resizeBrush, setEditing, setTool } from "./tools.js";

const RANDOM_TIER = 3; // its "why" says "random slice" already
const PAN_STEP = 60;
const { image, overlay, stage, viewport } = elements;

// --- showing a task ------------------------------------------------------------------------
function sourceName(source) {
  if (!source) return "";
  if (source.startsWith("decision:")) return "the inspector's verdict";
  if (source.startsWith("submission:")) return "a reviewed label";
  if (source === "import") return "imported";
  return source;
}

function show(entry) {
  resetDrawing();
  setEditing(!REVIEW);
  closeReject();
  if (!entry) {
    image.removeAttribute("src");
    overlay.replaceChildren();
    stage.hidden = true;
    view.show(null);
    $("empty").hidden = false;
    $("empty").textContent = REVIEW
      ? "No label is waiting for your review at this station. This page looks again every 15 s."
      : "Nothing to label at this station right now. New tasks come as inspectors decide units; " +
        "this page looks again every 15 s.";
    for (const id of ["task-id", "task-why", "task-current", "task-model"]) $(id).textContent = "–";
    $("task-serial").textContent = "";
    $("task-unit").hidden = true;
    $("feedback").hidden = true;
    if (REVIEW) {
      $("submission-author").textContent = "–";
      $("submission-time").textContent = "";
      $("submission-summary").textContent = "–";
    }
    renderShapes();
    return;
  }
  const task = entry.task;
  setClasses(task.classes);
  $("empty").hidden = true;
  stage.hidden = false;
  image.src = entry.img.src; // decoded already when it was claimed ahead: painted from memory
  image.width = task.width;
  image.height = task.height;
  elements.masks.style.width = `${task.width}px`;
  elements.masks.style.height = `${task.height}px`;
  overlay.setAttribute("viewBox", `0 0 ${task.width} ${task.height}`);
  overlay.setAttribute("width", task.width);
  overlay.setAttribute("height", task.height);
  view.show(task.width, task.height);

  $("task-id").textContent = `#${task.id}`;
  $("task-serial").textContent = task.serial || task.source_name || "";
  // An item from the line links to its unit's history (decisions, comments, earlier labels).
  $("task-unit").hidden = !task.unit;
  if (task.unit) $("task-unit").href = `/units/${task.unit}/`;
  const why = [task.why];
  if (task.random_slice && task.tier !== RANDOM_TIER) why.push("random slice");
  if (task.margin !== null && task.margin !== undefined) why.push(`margin ${task.margin.toFixed(2)}`);
  $("task-why").textContent = why.join(" · ");
  $("task-why").dataset.tier = task.tier;
  const source = task.current.length ? sourceName(task.current[0].source) : "";
  $("task-current").textContent = task.current.length
    ? `${summarize(task.current)}${source ? ` · ${source}` : ""}`
    : "none yet";
  if (task.model) {
    const m = task.model;
    const regions = m.regions.length === 1 ? "1 region" : `${m.regions.length} regions`;
    // a fail without regions names its class: A takes it for the whole image
    const named = m.verdict === "fail" && !m.regions.length && m.label ? ` ${m.label} (whole image)` : "";
    $("task-model").textContent = `${m.verdict}${named}, score ${m.score.toFixed(3)}, ${regions} (${m.version})`;
  } else {
    $("task-model").textContent = "no model output";
  }
  $("feedback").hidden = !task.feedback;
  $("feedback-text").textContent = task.feedback || "";
  if (REVIEW) {
    const submission = entry.submission;
    $("submission-author").textContent = submission.author;
    $("submission-time").textContent = new Date(submission.created_at).toLocaleString();
    $("submission-summary").textContent = submission.no_defect ? "no defect" : summarize(submission.annotations);
  }
  if ($("status").classList.contains("bad")) say("");
  render();
}

queue.show = show;
view.onChange = () => renderLive();

function skip() {
  const entry = current();
  if (!entry || state.busy || !queue.skip()) return;
  say(`${REVIEW ? "Label" : "Task"} ${entry.id} skipped: back in the queue for someone else.`);
}

// --- help ----------------------------------------------------------------------------------
function toggleHelp(open) {
  const help = $("help");
  help.hidden = open === undefined ? !help.hidden : !open;
}

// --- keys and buttons ----------------------------------------------------------------------
// The keys are lib/keymap.js's, one map for the station, labeling and review pages.
function escape() {
  if (!$("help").hidden) toggleHelp(false);
  else if (state.polygon) cancelPolygon();
  else if (boxCancel() || editCancel()) return;
  else if (state.selected) select(null);
  else if (REVIEW && state.rejecting) closeReject();
  else if (REVIEW && state.editing) cancelFix();
}

const PANS = { arrowleft: [PAN_STEP, 0], arrowright: [-PAN_STEP, 0], arrowup: [0, PAN_STEP], arrowdown: [0, -PAN_STEP] };
const send = () => (REVIEW ? saveFix(false) : submitLabel(false));

const drawing = {
  help: () => toggleHelp(),
  escape,
  skip,
  undo: () => {
    if (state.editing && state.polygon) removePolygonPoint(); // Z takes back a corner first
    else undo();
  },
  redo,
  wholeImage: addWholeImage,
  delete: deleteSelectedOrLast,
  takeModel: acceptAllModelRegions,
  copyCurrent: copyCurrentLabel,
  submit: () => {
    if (state.polygon) closePolygon();
    else send();
  },
  noDefect: () => (REVIEW ? saveFix(true) : submitLabel(true)),
  toggleModel: () => {
    state.showReference = !state.showReference;
    say(state.showReference ? "Showing the model's proposal and the current label." : "Reference hidden (H shows it).");
    render();
  },
  zoomIn: () => view.zoomBy(1.25),
  zoomOut: () => view.zoomBy(0.8),
  fit: () => view.fit(),
  pan: (key) => view.panBy(...PANS[key]),
  panHold: (down) => {
    state.spaceDown = down;
    viewport.classList.toggle("panning", down);
    if (!down) renderLive();
  },
  chooseClass: (key) => chooseClass(Number(key) - 1),
  box: () => setTool("box"),
  polygon: () => setTool("polygon"),
  brush: () => setTool("brush"),
  eraser: () => setTool("eraser"),
  select: () => setTool("select"),
  smallerBrush: () => resizeBrush(1 / 1.25),
  largerBrush: () => resizeBrush(1.25),
};
const actions = REVIEW ? { ...drawing, accept: () => review("accept"), reject: openReject, fix: startFix } : drawing;

bindKeys(REVIEW ? "review" : "label", {
  handlers: actions,
  mode: () => (!REVIEW ? "label" : state.editing ? "fixing" : "review"),
  allow: (action) => $("help").hidden || action === "help" || action === "escape",
});
renderHelp($("help-keys"), REVIEW ? "review" : "label");
labelButtons();

document.querySelectorAll("button[data-action]").forEach((button) => {
  button.addEventListener("click", () => {
    button.blur(); // Enter and Space belong to the page's keys, not to the last button clicked
    if (button.dataset.action === "submit") send(); // the button submits, an open polygon or not
    else actions[button.dataset.action]();
  });
});
document.querySelectorAll("button[data-tool]").forEach((button) => {
  button.addEventListener("click", () => {
    button.blur();
    setTool(button.dataset.tool);
  });
});
if (REVIEW) {
  $("reject-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sendReject();
  });
  $("reject-comment").addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      closeReject();
      say("Rejection cancelled.");
    }
  });
}
$("help").addEventListener("click", (event) => {
  if (event.target === $("help")) toggleHelp(false);
});

// --- the pointer: mouse, pen or finger ---------------------------------------------------------
// Pointer events, captured by the viewport while a button (or the pen, or the finger) is down.
// The middle button, or the left one with Space held, pans; so does the left one when the page
// only shows (reviewing) or finds nothing to edit or take under it with the select tool. A press
// on the selected shape's handles edits it with any tool but the brush. Otherwise the tool in hand.
let activePointer = null;

viewport.addEventListener("pointerdown", (event) => {
  if (!current() || state.busy || activePointer !== null) return;
  event.preventDefault();
  if (event.button !== 0 && event.button !== 1) return;
  activePointer = event.pointerId;
  try {
    viewport.setPointerCapture(event.pointerId);
  } catch {
    // a pointer the browser does not track (a synthetic event): the window still hears it
  }
  if (event.button === 1 || state.spaceDown || !state.editing) {
    view.startPan(event);
    return;
  }
  const point = view.imagePoint(event);
  state.pointer = point;
  const tool = state.tool;
  if (tool !== "brush" && !(tool === "polygon" && state.polygon) && editBegin(point, { body: tool === "select" })) return;
  if (tool === "box") boxBegin(point, event);
  else if (tool === "polygon") polygonClick(point, event);
  else if (tool === "brush") strokeBegin(point);
  else if (!clickAt(point)) {
    select(null);
    view.startPan(event);
  }
});

window.addEventListener("pointermove", (event) => {
  if (!current() || (activePointer !== null && event.pointerId !== activePointer)) return;
  const gesture = state.gesture;
  const point = view.imagePoint(event);
  state.pointer = point;
  if (gesture && gesture.kind === "box") boxMove(point);
  else if (gesture && gesture.kind === "stroke") strokeMove(point);
  else if (gesture && gesture.kind === "edit") editMove(point);
  renderLive();
});

function pointerEnd(event) {
  if (event.pointerId !== activePointer) return;
  activePointer = null;
  const gesture = state.gesture;
  if (!gesture) return;
  state.gesture = null;
  if (gesture.kind === "box") boxEnd(gesture, event);
  else if (gesture.kind === "stroke") strokeEnd(gesture);
  else if (gesture.kind === "edit") editEnd(gesture);
  if (event.pointerType !== "mouse") state.pointer = null; // a pen lifted or a finger: no ring left
  renderLive();
}
window.addEventListener("pointerup", pointerEnd);
window.addEventListener("pointercancel", pointerEnd);
viewport.addEventListener("lostpointercapture", pointerEnd);

viewport.addEventListener("pointerleave", () => {
  if (activePointer !== null) return;
  state.pointer = null;
  renderLive();
});
viewport.addEventListener("auxclick", (event) => event.preventDefault());
// A right click on a vertex of the selected polygon removes it (no menu there).
viewport.addEventListener("contextmenu", (event) => {
  if (current() && contextAt(view.imagePoint(event))) event.preventDefault();
});

// For the browser tests: whether a task is on screen with its image, and the drawing's state.
window.loupeLabeling = {
  ready: () => Boolean(current() && current().loaded && !state.busy && !queue.advancing),
  idle: () => !state.busy && !queue.advancing && !queue.claimingNext,
  current: () => (current() ? { id: current().id, task: current().task.id } : null),
  shapes: () => state.shapes.map((shape) => structuredClone(shape)),
  selected: () => state.shapes.indexOf(state.selected),
  masks: () => state.masks.map((canvas, index) => (canvas ? state.classes[index] : null)).filter(Boolean),
  view: () => view.view(),
  tool: activeTool,
};

setClasses(state.classes);
renderTools();
refreshFigures();
refreshFiguresEvery();
queue.advance();
