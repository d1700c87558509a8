// Sending what the person decided: a label for review (labeling), or a review of someone else's
// label (accept, reject with a comment, fix with the drawing tools). Then on to the next task.

import { api } from "../lib/api.js";
import { $ } from "../lib/dom.js";
import { say } from "../lib/format.js";
import { refreshFigures } from "./figures.js";
import { closePolygon } from "./polygon.js";
import { drawnShapes, hasDrawing, loadAnnotations, resetDrawing } from "./shapes.js";
import { API, REVIEW, current, queue, render, root, state } from "./state.js";
import { renderTools, setEditing } from "./tools.js";

// Enter / S: a polygon being drawn is closed first (Enter only closes it).
function labelShapesOrWarn() {
  if (state.polygon && !closePolygon()) return null;
  const shapes = drawnShapes();
  if (!shapes.length) {
    say("Draw at least one defect region, or press N for no defect.", true);
    return null;
  }
  return shapes;
}

// N over a drawing asks for a second N: the drawing would be thrown away.
function noDefectConfirmed() {
  const entry = current();
  if (!hasDrawing() || state.noDefectArmed === entry.id) return true;
  state.noDefectArmed = entry.id;
  say("You have drawn regions: press N again to send “no defect” and drop them.", true);
  return false;
}

function finished(entry, message) {
  say(message);
  refreshFigures();
  queue.finish(entry);
}

async function send(url, body, entry, done) {
  state.busy = true;
  root.classList.add("busy");
  say("Sending…");
  try {
    await api("POST", url, body);
    state.done += 1;
    $("my-count").textContent = String(state.done);
    finished(entry, done);
  } catch (error) {
    if (error.status === 409) {
      finished(entry, `${error.detail}: on to the next one.`);
    } else {
      say(`Not saved: ${error.detail}`, true);
    }
  } finally {
    state.busy = false;
    root.classList.remove("busy");
  }
}

// S (regions) or N (no defect), labeling.
export function submitLabel(noDefect) {
  const entry = current();
  if (!entry || state.busy) return;
  let body;
  if (noDefect) {
    if (!noDefectConfirmed()) return;
    body = { no_defect: true, shapes: [] };
  } else {
    const shapes = labelShapesOrWarn();
    if (!shapes) return;
    body = { no_defect: false, shapes };
  }
  const what = noDefect ? "no defect" : `${body.shapes.length} region${body.shapes.length > 1 ? "s" : ""}`;
  send(`${API}/tasks/${entry.id}/submissions/`, body, entry, `Task #${entry.id}: ${what} sent for review.`);
}

// --- review --------------------------------------------------------------------------------
export function review(action, extra) {
  const entry = current();
  if (!entry || state.busy) return;
  const body = { action, comment: "", no_defect: false, shapes: [], ...extra };
  const done = { accept: "accepted", reject: "sent back", fix: "fixed" }[action];
  send(`${API}/submissions/${entry.id}/review/`, body, entry, `${entry.submission.author}'s label of task #${entry.task.id}: ${done}.`);
}

export function openReject() {
  if (!current() || state.busy) return;
  state.rejecting = true;
  $("reject-form").hidden = false;
  $("reject-comment").value = "";
  $("reject-comment").focus();
  say("Say what is wrong, then Enter (Esc cancels).");
}

export function closeReject() {
  if (!REVIEW) return;
  state.rejecting = false;
  $("reject-form").hidden = true;
  if (document.activeElement === $("reject-comment")) $("reject-comment").blur();
}

export function sendReject() {
  const comment = $("reject-comment").value.trim();
  if (!comment) {
    say("A rejection needs a comment: say what the labeler should change.", true);
    return;
  }
  closeReject();
  review("reject", { comment });
}

// F: the label under review becomes the drawing, to fix.
export async function startFix() {
  const entry = current();
  if (!entry || state.editing || state.busy) return;
  closeReject();
  setEditing(true);
  state.tool = "select";
  renderTools();
  say("");
  await loadAnnotations(entry.submission.annotations, { undoable: false });
}

export function cancelFix() {
  resetDrawing();
  setEditing(false);
  render();
  say("Fix discarded.");
}

export function saveFix(noDefect) {
  if (!current() || state.busy) return;
  if (noDefect) {
    if (!noDefectConfirmed()) return;
    review("fix", { no_defect: true });
    return;
  }
  const shapes = labelShapesOrWarn();
  if (shapes) review("fix", { shapes });
}
