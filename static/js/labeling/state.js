// The labeling page's state: what is on screen, what is being drawn, and the few facts every
// part of the page reads. One object (`state`) mutated by the page's modules through their own
// functions; the claimed tasks are `queue` (lib/claim_ahead.js) and the zoom and pan `view`
// (lib/viewport.js). Everything drawn is kept in image pixels.

import { api } from "../lib/api.js";
import { ClaimAhead } from "../lib/claim_ahead.js";
import { $ } from "../lib/dom.js";
import { say } from "../lib/format.js";
import { Viewport } from "../lib/viewport.js";

export const root = $("labeling");
export const REVIEW = root.dataset.mode === "review";
export const API = root.dataset.api;
export const slug = root.dataset.slug;
export const elements = {
  image: $("item-image"),
  overlay: $("overlay"),
  stage: $("stage"),
  viewport: $("viewport"),
  masks: $("masks"),
};
// One colour per class, in the station's class order (the model's class order).
const PALETTE = [
  "#ff453a", "#ffd60a", "#30d158", "#64d2ff", "#bf5af2",
  "#ff9f0a", "#0a84ff", "#ff375f", "#ac8e68",
];
const UNKNOWN_CLASS_COLOUR = "#c7c7cc";
const EXCLUDE_LIMIT = 150; // the claim API takes at most 200 ids

export const state = {
  classes: JSON.parse($("labeling-classes").textContent),
  classIndex: 0,
  tool: "box", // box | polygon | brush | select
  eraser: false, // the brush rubs out
  brushSize: 16, // image pixels
  // {kind: "box"|"polygon"|"class", label, geometry, hidden?} in image pixels; "class": the
  // whole image (no geometry). Hidden shapes are not drawn but are listed and sent.
  shapes: [],
  masks: [], // per class index: a canvas at image resolution, painted where the defect is
  selected: null, // a shape, or {kind: "mask", classIndex}
  vertex: null, // the chosen vertex (index) of the selected polygon: what Delete removes
  polygon: null, // [[x, y], ...] while a polygon is being drawn
  pointer: null, // the image point under the mouse
  gesture: null, // the drag in progress: {kind: "box"|"stroke"|"edit", ...}
  acceptedRegions: new Set(), // indexes of the model's regions taken as shapes
  showReference: true,
  editing: !REVIEW, // review: true while fixing a label
  rejecting: false,
  noDefectArmed: null, // a task id: N pressed once over drawn shapes
  busy: false, // a label or review is on its way
  spaceDown: false,
  done: 0,
};

// The claimed tasks (labeling) or submissions (review); `show` is the page's (page.js).
export const queue = new ClaimAhead({
  claim: (exclude) => api("POST", REVIEW ? `${API}/stations/${slug}/reviews/claim/` : `${API}/stations/${slug}/tasks/claim/`, { exclude }),
  entry: (body) =>
    REVIEW
      ? { id: body.id, task: body.task, submission: body, imageUrl: body.task.image_url }
      : { id: body.id, task: body, submission: null, imageUrl: body.image_url },
  release: (id) => (REVIEW ? `${API}/submissions/${id}/release/` : `${API}/tasks/${id}/release/`),
  show: () => {},
  onError: (error) => say(`Could not claim ${REVIEW ? "a label" : "a task"}: ${error.detail}`, true),
  onImageFailed: (entry) => say(`The image of task ${entry.task.id} could not be loaded.`, true),
  excludeLimit: EXCLUDE_LIMIT,
  releaseOnLeave: true,
});

// The zoom and pan, its percentage in the corner; `onChange` is the page's.
export const view = new Viewport(elements.viewport, elements.stage, {
  maxZoom: 40,
  zoomLabel: document.getElementById("zoom-level"),
});

// The page's drawing (render.js) registers its painters here, so that the tools and the rest ask
// for a redraw without importing it (the modules' imports stay a tree: no cycles, which hashed
// static file manifests could not resolve).
const painters = { all() {}, live() {}, list() {}, classes() {} };
export const registerPainters = (drawing) => Object.assign(painters, drawing);
export const render = () => painters.all(); // the whole overlay and the list of shapes
export const renderLive = () => painters.live(); // the mouse's live feedback only
export const renderShapes = () => painters.list(); // the list of shapes only
export const renderClasses = () => painters.classes(); // the chosen class

// The entry on screen ({id, task, submission, img, loaded, ready}), or null.
export const current = () => queue.current;

export function colourOf(label) {
  const index = state.classes.indexOf(label);
  return index < 0 ? UNKNOWN_CLASS_COLOUR : PALETTE[index % PALETTE.length];
}

// The class chosen for what is drawn next.
export function currentLabel() {
  return state.classes[state.classIndex];
}
