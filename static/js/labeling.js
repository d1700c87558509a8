// The labeling page and the review page (one script, two modes).
//
// Labeling: claim the most useful task, show its image large with the model's proposal and the
// current label, draw boxes, polygons and brush masks in the station's classes, and send the label
// for review with one key. Review: claim someone else's label, then accept, reject with a comment,
// or fix it with the same tools. The next task is claimed and its image decoded while the person
// works on the current one. Everything drawn is kept in image pixels: the stage (image, mask
// canvases, SVG overlay) is moved and scaled as one by a CSS transform.
(function () {
  "use strict";

  const root = document.getElementById("labeling");
  if (!root) return;
  const REVIEW = root.dataset.mode === "review";
  const API = root.dataset.api;
  const slug = root.dataset.slug;
  // One colour per class, in the station's class order (the model's class order).
  const PALETTE = [
    "#ff453a", "#ffd60a", "#30d158", "#64d2ff", "#bf5af2",
    "#ff9f0a", "#0a84ff", "#ff375f", "#ac8e68",
  ];
  const KEYED_CLASSES = 9;
  const RANDOM_TIER = 3; // its "why" says "random slice" already
  const MIN_BOX_SCREEN_PIXELS = 4; // a smaller drag is a click
  const CLOSE_POLYGON_SCREEN_PIXELS = 10; // a click this near the first point closes the polygon
  const UNDO_LIMIT = 200;
  const EXCLUDE_LIMIT = 150; // the claim API takes at most 200 ids
  const FIGURES_EVERY_MS = 15000;
  const $ = (id) => document.getElementById(id);
  const image = $("item-image");
  const overlay = $("overlay");
  const stage = $("stage");
  const viewport = $("viewport");
  const masksLayer = $("masks");

  const state = {
    current: null, // {id, task, submission, img, loaded, ready}
    next: null, // claimed ahead, its image loading
    claimingNext: null,
    passed: [], // ids finished or skipped here: not to be claimed again by this page
    classes: JSON.parse($("labeling-classes").textContent),
    classIndex: 0,
    tool: "box", // box | polygon | brush | select
    eraser: false,
    brushSize: 16, // image pixels
    shapes: [], // {kind: "box"|"polygon", label, geometry} in image pixels
    masks: [], // per class index: a canvas at image resolution, painted where the defect is
    selected: null, // a shape, or {kind: "mask", classIndex}
    polygon: null, // [[x, y], ...] while a polygon is being drawn
    pointer: null, // the image point under the mouse
    gesture: null, // the drag in progress
    undo: [],
    acceptedRegions: new Set(), // indexes of the model's regions taken as boxes
    showReference: true,
    editing: !REVIEW, // review: true while fixing a label
    rejecting: false,
    noDefectArmed: null, // a task id: N pressed once over drawn shapes
    busy: false, // a label or review is on its way
    advancing: false, // the next task is being claimed
    spaceDown: false,
    zoom: 1,
    panX: 0,
    panY: 0,
    done: 0,
  };

  // --- talking to the server -----------------------------------------------------------------
  const { api, csrfToken } = window.loupe; // static/js/api.js
  const { svg, caption, hasMask, maskImage, paintMask } = window.loupeRegions; // static/js/regions.js

  function say(text, bad) {
    const status = $("status");
    status.textContent = text;
    status.className = "status" + (bad ? " bad" : "");
    status.setAttribute("role", bad ? "alert" : "status");
  }

  // --- claiming and preloading ---------------------------------------------------------------
  const claimUrl = REVIEW ? `${API}/stations/${slug}/reviews/claim/` : `${API}/stations/${slug}/tasks/claim/`;
  const releaseUrl = (id) => (REVIEW ? `${API}/submissions/${id}/release/` : `${API}/tasks/${id}/release/`);

  function heldIds() {
    const ids = state.passed.slice(-EXCLUDE_LIMIT);
    if (state.current) ids.push(state.current.id);
    if (state.next) ids.push(state.next.id);
    return ids;
  }

  function preload(body) {
    const entry = REVIEW
      ? { id: body.id, task: body.task, submission: body }
      : { id: body.id, task: body, submission: null };
    const img = new Image();
    img.src = entry.task.image_url;
    entry.img = img;
    entry.loaded = false;
    entry.ready = img.decode().then(
      () => (entry.loaded = true),
      () => false
    );
    return entry;
  }

  async function claim() {
    const body = await api("POST", claimUrl, { exclude: heldIds() });
    return body ? preload(body) : null;
  }

  function claimNext() {
    if (state.next || state.claimingNext) return state.claimingNext;
    state.claimingNext = claim()
      .then((entry) => {
        state.next = entry;
        return entry;
      })
      .catch((error) => say(`Could not claim ${REVIEW ? "a label" : "a task"}: ${error.detail}`, true))
      .finally(() => {
        state.claimingNext = null;
      });
    return state.claimingNext;
  }

  async function advance() {
    // Show the prefetched entry now; claim the one after it in the background. While a claim
    // is on its way nothing else moves on (two quick skips must not both wait for one claim).
    if (state.advancing) return;
    state.advancing = true;
    let entry;
    try {
      entry = state.next;
      state.next = null;
      if (!entry) {
        await claimNext();
        entry = state.next;
        state.next = null;
      }
    } finally {
      state.advancing = false;
    }
    show(entry);
    if (entry) {
      const loaded = await entry.ready;
      if (!loaded && state.current === entry) say(`The image of task ${entry.task.id} could not be loaded.`, true);
      claimNext();
    }
  }

  function skip() {
    const entry = state.current;
    if (!entry || state.busy || state.advancing) return;
    state.passed.push(entry.id);
    api("POST", releaseUrl(entry.id)).catch(() => {});
    say(`${REVIEW ? "Label" : "Task"} ${entry.id} skipped: back in the queue for someone else.`);
    advance();
  }

  // Claims are held for a while on the server; give them back when the page goes away.
  window.addEventListener("pagehide", () => {
    for (const entry of [state.current, state.next]) {
      if (!entry) continue;
      fetch(releaseUrl(entry.id), {
        method: "POST",
        keepalive: true,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken() },
      }).catch(() => {});
    }
  });

  // --- showing a task ------------------------------------------------------------------------
  function colourOf(label) {
    const index = state.classes.indexOf(label);
    return index < 0 ? "#c7c7cc" : PALETTE[index % PALETTE.length];
  }

  function sourceName(source) {
    if (!source) return "";
    if (source.startsWith("decision:")) return "the inspector's verdict";
    if (source.startsWith("submission:")) return "a reviewed label";
    if (source === "import") return "imported";
    return source;
  }

  // "crack box ×2, scratch (whole image)" or "no defect".
  function summarize(annotations) {
    if (!annotations.length) return "none";
    if (annotations.some((a) => a.kind === "no_defect")) return "no defect";
    const words = { box: "box", polygon: "polygon", mask: "mask", class: "(whole image)" };
    const counts = new Map();
    for (const annotation of annotations) {
      const key = `${annotation.label} ${words[annotation.kind] || annotation.kind}`;
      counts.set(key, (counts.get(key) || 0) + 1);
    }
    return [...counts].map(([key, n]) => (n > 1 ? `${key} ×${n}` : key)).join(", ");
  }

  function setClasses(classes) {
    if (classes && classes.join("\n") !== state.classes.join("\n")) state.classes = [...classes];
    if (state.classIndex >= state.classes.length) state.classIndex = 0;
    const list = $("classes");
    list.replaceChildren();
    state.classes.forEach((name, index) => {
      const item = document.createElement("li");
      item.dataset.class = name;
      item.style.setProperty("--colour", colourOf(name));
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      item.append(swatch);
      if (index < KEYED_CLASSES) {
        const key = document.createElement("kbd");
        key.textContent = String(index + 1);
        item.append(key, " ");
      }
      item.append(name);
      item.addEventListener("click", () => chooseClass(index));
      list.append(item);
    });
    renderClasses();
  }

  function renderClasses() {
    document.querySelectorAll("#classes li").forEach((item, index) => {
      item.classList.toggle("on", index === state.classIndex);
    });
  }

  function resetDrawing() {
    state.shapes = [];
    state.masks = [];
    masksLayer.replaceChildren();
    state.selected = null;
    state.polygon = null;
    state.gesture = null;
    state.undo = [];
    state.acceptedRegions = new Set();
    state.noDefectArmed = null;
  }

  function show(entry) {
    state.current = entry;
    resetDrawing();
    setEditing(!REVIEW);
    closeReject();
    if (!entry) {
      image.removeAttribute("src");
      overlay.replaceChildren();
      stage.hidden = true;
      $("empty").hidden = false;
      $("empty").textContent = REVIEW
        ? "No label is waiting for your review at this station. This page looks again every 15 s."
        : "Nothing to label at this station right now. New tasks come as inspectors decide units; " +
          "this page looks again every 15 s.";
      for (const id of ["task-id", "task-why", "task-current", "task-model"]) $(id).textContent = "–";
      $("task-serial").textContent = "";
      $("feedback").hidden = true;
      if (REVIEW) {
        $("submission-author").textContent = "–";
        $("submission-time").textContent = "";
        $("submission-summary").textContent = "–";
      }
      $("zoom-level").textContent = "–";
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
    masksLayer.style.width = `${task.width}px`;
    masksLayer.style.height = `${task.height}px`;
    overlay.setAttribute("viewBox", `0 0 ${task.width} ${task.height}`);
    overlay.setAttribute("width", task.width);
    overlay.setAttribute("height", task.height);
    fit();

    $("task-id").textContent = `#${task.id}`;
    $("task-serial").textContent = task.serial || task.source_name || "";
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
      $("task-model").textContent = `${m.verdict}, score ${m.score.toFixed(3)}, ${regions} (${m.version})`;
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

  // --- drawing the overlay -------------------------------------------------------------------
  // Three layers: the reference (model proposal, current label, the label under review), the
  // shapes being drawn, and the live feedback of the mouse (rubber band, polygon, brush ring).
  let maskIds = 0;

  function maskOverlay(url, colour, className) {
    const task = state.current.task;
    const id = `mask-${++maskIds}`;
    const mask = svg("mask", { id, maskUnits: "userSpaceOnUse", x: 0, y: 0, width: task.width, height: task.height });
    mask.append(svg("image", { href: url, x: 0, y: 0, width: task.width, height: task.height, preserveAspectRatio: "none" }));
    const group = svg("g", { class: className });
    group.style.setProperty("--colour", colour);
    group.append(mask, svg("rect", { x: 0, y: 0, width: task.width, height: task.height, mask: `url(#${id})`, class: "mask-fill" }));
    return group;
  }

  // Captions do not cover each other: the model's above its box, the current label's below,
  // the drawn shapes' inside their top-left corner.
  function outline(kind, geometry, className, colour, text, place = "inside") {
    const group = svg("g", { class: className });
    group.style.setProperty("--colour", colour);
    let anchor;
    if (kind === "box") {
      group.append(svg("rect", { x: geometry.x, y: geometry.y, width: geometry.width, height: geometry.height }));
      anchor = [geometry.x, place === "below" ? geometry.y + geometry.height : geometry.y];
    } else {
      const points = geometry.points;
      group.append(svg("polygon", { points: points.map((p) => p.join(",")).join(" ") }));
      const lowest = place === "below";
      anchor = points.reduce((best, p) => ((lowest ? p[1] > best[1] : p[1] < best[1]) ? p : best), points[0]);
    }
    if (text) group.append(caption(anchor[0], anchor[1], text, place));
    return group;
  }

  function annotationElement(annotation, className, colour, place) {
    if (annotation.kind === "box" || annotation.kind === "polygon") {
      return outline(annotation.kind, annotation.geometry, className, colour, annotation.label, place);
    }
    if (annotation.kind === "mask" && annotation.mask_url) {
      return maskOverlay(annotation.mask_url, colour, `${className} mask`);
    }
    return null;
  }

  function render() {
    overlay.replaceChildren();
    const entry = state.current;
    if (!entry) return;
    const task = entry.task;
    const reference = svg("g", { id: "layer-reference" });
    if (state.showReference) {
      for (const annotation of task.current) {
        const element = annotationElement(annotation, "region current", "#f5f5f7", "below");
        if (element) reference.append(element);
      }
      if (task.model) {
        task.model.regions.forEach((region, index) => {
          if (state.acceptedRegions.has(index)) return;
          const colour = colourOf(region.label);
          const text = `${region.label} ${Number(region.score).toFixed(2)}`;
          const element = outline("box", region, "region model", colour, text, "above");
          const mask = maskImage(region, colour);
          if (mask) element.prepend(mask);
          element.dataset.region = index;
          reference.append(element);
        });
      }
    }
    if (REVIEW && !state.editing) {
      for (const annotation of entry.submission.annotations) {
        const element = annotationElement(annotation, "shape submitted", colourOf(annotation.label));
        if (element) reference.append(element);
      }
    }
    const shapes = svg("g", { id: "layer-shapes" });
    for (const shape of state.shapes) {
      const selected = shape === state.selected ? " selected" : "";
      shapes.append(outline(shape.kind, shape.geometry, `shape ${shape.kind}${selected}`, colourOf(shape.label), shape.label));
    }
    overlay.append(reference, shapes, svg("g", { id: "layer-live" }));
    renderLive();
    renderShapes();
  }

  function renderLive() {
    const live = overlay.querySelector("#layer-live");
    if (!live) return;
    live.replaceChildren();
    const colour = state.classes[state.classIndex] ? colourOf(state.classes[state.classIndex]) : "#fff";
    const gesture = state.gesture;
    if (gesture && gesture.kind === "box" && gesture.to) {
      live.append(outline("box", rectangle(gesture.start, gesture.to), "shape box drawing", colour, ""));
    }
    if (state.polygon) {
      const points = state.pointer ? [...state.polygon, clampPoint(state.pointer)] : state.polygon;
      const line = svg("polyline", { points: points.map((p) => p.join(",")).join(" "), class: "polygon-drawing" });
      line.style.setProperty("--colour", colour);
      const first = svg("circle", { cx: state.polygon[0][0], cy: state.polygon[0][1], class: "polygon-start" });
      first.style.setProperty("--colour", colour);
      live.append(line, first);
    }
    if (state.editing && state.tool === "brush" && state.pointer && !state.spaceDown) {
      const ring = svg("circle", {
        cx: state.pointer.x,
        cy: state.pointer.y,
        r: state.brushSize / 2,
        class: "brush-ring" + (state.eraser ? " eraser" : ""),
      });
      ring.style.setProperty("--colour", colour);
      live.append(ring);
    }
  }

  function renderShapes() {
    const list = $("shapes");
    list.replaceChildren();
    const entry = state.current;
    if (!entry) return;
    const row = (colour, text, onSelect, onDelete, selected) => {
      const item = document.createElement("li");
      item.style.setProperty("--colour", colour);
      item.classList.toggle("selected", Boolean(selected));
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      const label = document.createElement("span");
      label.className = "what";
      label.textContent = text;
      item.append(swatch, label);
      if (onSelect) item.addEventListener("click", onSelect);
      if (onDelete) {
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "remove";
        remove.title = "delete";
        remove.textContent = "×";
        remove.addEventListener("click", (event) => {
          event.stopPropagation();
          onDelete();
        });
        item.append(remove);
      }
      list.append(item);
    };
    if (REVIEW && !state.editing) {
      const submission = entry.submission;
      if (submission.no_defect) row("#8e8e93", "no defect", null, null);
      for (const annotation of submission.annotations) {
        if (annotation.kind === "no_defect") continue;
        row(colourOf(annotation.label), describeAnnotation(annotation), null, null);
      }
      return;
    }
    for (const shape of state.shapes) {
      row(
        colourOf(shape.label),
        describeAnnotation(shape),
        () => select(shape),
        () => deleteShape(shape),
        shape === state.selected
      );
    }
    state.masks.forEach((canvas, classIndex) => {
      if (!canvas) return;
      const label = state.classes[classIndex];
      const selected = state.selected && state.selected.kind === "mask" && state.selected.classIndex === classIndex;
      row(
        colourOf(label),
        `${label} brush mask`,
        () => select({ kind: "mask", classIndex }),
        () => clearMask(classIndex),
        selected
      );
    });
    if (!list.children.length) {
      const empty = document.createElement("li");
      empty.className = "muted";
      empty.textContent = "none yet";
      list.append(empty);
    }
  }

  function describeAnnotation(annotation) {
    const g = annotation.geometry || {};
    if (annotation.kind === "box") {
      return `${annotation.label} box at ${Math.round(g.x)},${Math.round(g.y)} (${Math.round(g.width)}×${Math.round(g.height)})`;
    }
    if (annotation.kind === "polygon") return `${annotation.label} polygon, ${g.points.length} points`;
    if (annotation.kind === "mask") return `${annotation.label} brush mask`;
    if (annotation.kind === "class") return `${annotation.label} (whole image)`;
    return annotation.label || annotation.kind;
  }

  // --- zoom and pan --------------------------------------------------------------------------
  function applyTransform() {
    stage.style.transform = `translate(${state.panX}px, ${state.panY}px) scale(${state.zoom})`;
    stage.style.setProperty("--zoom", state.zoom);
    stage.classList.toggle("pixelated", state.zoom >= 3);
    $("zoom-level").textContent = `${Math.round(state.zoom * 100)} %`;
  }

  function fit() {
    const task = state.current && state.current.task;
    if (!task) return;
    const scale = Math.min(viewport.clientWidth / task.width, viewport.clientHeight / task.height);
    state.zoom = scale;
    state.panX = (viewport.clientWidth - task.width * scale) / 2;
    state.panY = (viewport.clientHeight - task.height * scale) / 2;
    applyTransform();
  }

  function zoomBy(factor, centerX, centerY) {
    const x = centerX === undefined ? viewport.clientWidth / 2 : centerX;
    const y = centerY === undefined ? viewport.clientHeight / 2 : centerY;
    const zoom = Math.min(40, Math.max(0.05, state.zoom * factor));
    state.panX = x - ((x - state.panX) * zoom) / state.zoom;
    state.panY = y - ((y - state.panY) * zoom) / state.zoom;
    state.zoom = zoom;
    applyTransform();
    renderLive();
  }

  function panBy(dx, dy) {
    state.panX += dx;
    state.panY += dy;
    applyTransform();
  }

  function imagePoint(event) {
    const bounds = viewport.getBoundingClientRect();
    return {
      x: (event.clientX - bounds.left - state.panX) / state.zoom,
      y: (event.clientY - bounds.top - state.panY) / state.zoom,
    };
  }

  function clampPoint(point) {
    const task = state.current.task;
    return [Math.min(Math.max(point.x, 0), task.width), Math.min(Math.max(point.y, 0), task.height)];
  }

  function rectangle(a, b) {
    const [x1, y1] = clampPoint({ x: Math.min(a.x, b.x), y: Math.min(a.y, b.y) });
    const [x2, y2] = clampPoint({ x: Math.max(a.x, b.x), y: Math.max(a.y, b.y) });
    return { x: x1, y: y1, width: x2 - x1, height: y2 - y1 };
  }

  // --- tools ---------------------------------------------------------------------------------
  function setEditing(editing) {
    state.editing = editing;
    root.classList.toggle("editing", editing);
    $("shapes-title").textContent = REVIEW && !editing ? "Their shapes" : "Your shapes";
    if (REVIEW) $("fix-banner").hidden = !editing;
    renderTools();
  }

  function setTool(tool) {
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

  function renderTools() {
    const active = state.tool === "brush" && state.eraser ? "eraser" : state.tool;
    document.querySelectorAll("button[data-tool]").forEach((button) => {
      button.classList.toggle("on", button.dataset.tool === active);
    });
    viewport.dataset.tool = state.editing ? active : "view";
    $("brush-size").textContent = String(state.brushSize);
  }

  function resizeBrush(factor) {
    const size = Math.round(state.brushSize * factor);
    state.brushSize = Math.min(400, Math.max(1, size === state.brushSize ? size + Math.sign(factor - 1) : size));
    renderTools();
    renderLive();
  }

  function chooseClass(index) {
    if (index >= state.classes.length) return;
    state.classIndex = index;
    const label = state.classes[index];
    const shape = state.selected;
    if (state.editing && shape && shape.kind !== "mask" && shape.label !== label) {
      pushUndo({ type: "relabel", shape, label: shape.label });
      shape.label = label;
    }
    renderClasses();
    render();
  }

  function select(shape) {
    state.selected = shape;
    if (shape && shape.kind === "mask") {
      state.classIndex = shape.classIndex;
      renderClasses();
    }
    render();
  }

  // --- shapes and undo -----------------------------------------------------------------------
  function pushUndo(step) {
    state.undo.push(step);
    if (state.undo.length > UNDO_LIMIT) state.undo.shift();
  }

  // New shapes (and model regions taken, with the paint steps that took their masks): one undo.
  function addShapes(shapes, regions = [], paintSteps = []) {
    state.shapes.push(...shapes);
    for (const index of regions) state.acceptedRegions.add(index);
    const step = { type: "add", shapes, regions };
    pushUndo(paintSteps.length ? { type: "group", steps: [...paintSteps, step] } : step);
    state.selected = null;
    render();
  }

  function deleteShape(shape) {
    const index = state.shapes.indexOf(shape);
    if (index < 0) return;
    state.shapes.splice(index, 1);
    pushUndo({ type: "delete", shape, index });
    if (state.selected === shape) state.selected = null;
    render();
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

  function undo() {
    if (!state.editing) return;
    if (state.polygon) {
      removePolygonPoint();
      return;
    }
    const step = state.undo.pop();
    if (!step) {
      say("Nothing to undo.");
      return;
    }
    undoStep(step);
    render();
  }

  function deleteSelectedOrLast() {
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
    const slack = 4 / state.zoom;
    for (const shape of [...state.shapes].reverse()) {
      if (shape.kind === "box" && hitsBox(shape.geometry, point, slack)) return shape;
      if (shape.kind === "polygon" && insidePolygon(shape.geometry.points, point)) return shape;
    }
    return null;
  }

  function modelRegionAt(point) {
    const model = state.current && state.current.task.model;
    if (!model || !state.showReference) return -1;
    const slack = 4 / state.zoom;
    for (let index = model.regions.length - 1; index >= 0; index--) {
      if (!state.acceptedRegions.has(index) && hitsBox(model.regions[index], point, slack)) return index;
    }
    return -1;
  }

  function regionLabel(region) {
    return state.classes.includes(region.label) ? region.label : currentLabel();
  }

  function regionAsBox(region) {
    const box = rectangle({ x: region.x, y: region.y }, { x: region.x + region.width, y: region.y + region.height });
    return { kind: "box", label: regionLabel(region), geometry: box };
  }

  // A model region's mask painted into its class's brush mask; the undo step, or null when the
  // region has no (usable) mask.
  function regionAsMask(region) {
    if (!hasMask(region)) return null;
    const label = regionLabel(region);
    const classIndex = state.classes.indexOf(label);
    const canvas = maskCanvas(classIndex);
    const x = Math.max(0, Math.floor(region.x));
    const y = Math.max(0, Math.floor(region.y));
    const x2 = Math.min(canvas.width, Math.ceil(region.x + region.width));
    const y2 = Math.min(canvas.height, Math.ceil(region.y + region.height));
    if (x2 <= x || y2 <= y) return null;
    takeSnapshot(canvas);
    const step = { type: "paint", classIndex, x, y, patch: patchFromSnapshot(x, y, x2 - x, y2 - y) };
    return paintMask(canvas.getContext("2d"), region, colourOf(label)) ? step : null;
  }

  function acceptModelRegions(indexes) {
    const model = state.current && state.current.task.model;
    if (!state.editing || !model) {
      if (state.current && !model) say("The model has no proposal for this unit.");
      return;
    }
    const open = indexes.filter((index) => !state.acceptedRegions.has(index));
    if (!open.length) {
      say(model.regions.length ? "The model's regions are taken already." : "The model found no region on this unit.");
      return;
    }
    // A region with a mask is taken as that mask (a brush mask of its class), the others as boxes.
    const boxes = [];
    const paintSteps = [];
    for (const index of open) {
      const region = model.regions[index];
      const painted = regionAsMask(region);
      if (painted) paintSteps.push(painted);
      else boxes.push(regionAsBox(region));
    }
    addShapes(boxes, open, paintSteps);
    say(`Took ${describeTaken(boxes.length, paintSteps.length)}.`);
  }

  function describeTaken(boxes, masks) {
    const what = (count, one) => (count === 1 ? `1 ${one}` : `${count} ${one}s`);
    const parts = [];
    if (boxes) parts.push(`${what(boxes, "model region")} as ${boxes === 1 ? "a box" : "boxes"}`);
    if (masks) parts.push(`${what(masks, "model mask")} as brush paint`);
    return parts.join(" and ");
  }

  function acceptAllModelRegions() {
    const model = state.current && state.current.task.model;
    acceptModelRegions(model ? model.regions.map((_, index) => index) : []);
  }

  // Copy annotations (the current label, or the label under review) into the editable drawing.
  async function loadAnnotations(annotations, { undoable }) {
    const shapes = [];
    const steps = [];
    const masks = [];
    for (const annotation of annotations) {
      if (!state.classes.includes(annotation.label)) continue;
      if (annotation.kind === "box" || annotation.kind === "polygon") {
        shapes.push({ kind: annotation.kind, label: annotation.label, geometry: structuredClone(annotation.geometry) });
      } else if (annotation.kind === "mask" && annotation.mask_url) {
        masks.push(annotation);
      }
    }
    const entry = state.current;
    for (const annotation of masks) {
      const step = await maskLoad(annotation);
      if (state.current !== entry) return 0;
      if (step) steps.push(step);
    }
    state.shapes.push(...shapes);
    if (undoable && shapes.length) steps.push({ type: "add", shapes, regions: [] });
    if (undoable && steps.length) pushUndo({ type: "group", steps });
    render();
    return shapes.length + masks.length;
  }

  async function copyCurrentLabel() {
    const entry = state.current;
    if (!state.editing || !entry) return;
    const drawable = entry.task.current.filter((a) => ["box", "polygon", "mask"].includes(a.kind));
    if (!drawable.length) {
      say(`The current label has no regions to copy (${summarize(entry.task.current)}).`);
      return;
    }
    const copied = await loadAnnotations(drawable, { undoable: true });
    say(`Copied ${copied} region${copied === 1 ? "" : "s"} of the current label.`);
  }

  // --- box and polygon -----------------------------------------------------------------------
  function currentLabel() {
    return state.classes[state.classIndex];
  }

  function finishBox(gesture, event) {
    const moved = Math.hypot(event.clientX - gesture.clientX, event.clientY - gesture.clientY);
    if (moved < MIN_BOX_SCREEN_PIXELS) {
      clickAt(gesture.start);
      return;
    }
    const box = rectangle(gesture.start, imagePoint(event));
    if (box.width <= 0 || box.height <= 0) return;
    addShapes([{ kind: "box", label: currentLabel(), geometry: box }]);
  }

  // A click without a drag: take the model's region under it, or select the shape under it.
  function clickAt(point) {
    const region = modelRegionAt(point);
    if (region >= 0) {
      acceptModelRegions([region]);
      return true;
    }
    const shape = shapeAt(point);
    if (shape || state.selected) select(shape);
    return Boolean(shape);
  }

  function polygonClick(point, event) {
    if (state.polygon && state.polygon.length >= 3) {
      const [fx, fy] = state.polygon[0];
      const bounds = viewport.getBoundingClientRect();
      const screenX = bounds.left + state.panX + fx * state.zoom;
      const screenY = bounds.top + state.panY + fy * state.zoom;
      if (Math.hypot(event.clientX - screenX, event.clientY - screenY) <= CLOSE_POLYGON_SCREEN_PIXELS) {
        closePolygon();
        return;
      }
    }
    const clamped = clampPoint(point);
    if (!state.polygon) state.polygon = [];
    const last = state.polygon[state.polygon.length - 1];
    if (!last || last[0] !== clamped[0] || last[1] !== clamped[1]) state.polygon.push(clamped);
    renderLive();
  }

  function closePolygon() {
    if (!state.polygon) return false;
    if (state.polygon.length < 3) {
      say("A polygon needs at least 3 points (Esc cancels it).", true);
      return false;
    }
    const points = state.polygon;
    state.polygon = null;
    addShapes([{ kind: "polygon", label: currentLabel(), geometry: { points } }]);
    return true;
  }

  function cancelPolygon() {
    state.polygon = null;
    renderLive();
  }

  function removePolygonPoint() {
    state.polygon.pop();
    if (!state.polygon.length) state.polygon = null;
    renderLive();
  }

  // --- brush masks ---------------------------------------------------------------------------
  // One canvas per class at the image's resolution; painted pixels are opaque in the class colour.
  // Undo keeps only the rectangle a stroke touched, copied from a snapshot taken before it.
  const snapshot = document.createElement("canvas");

  function maskCanvas(classIndex) {
    let canvas = state.masks[classIndex];
    if (!canvas) {
      const task = state.current.task;
      canvas = document.createElement("canvas");
      canvas.width = task.width;
      canvas.height = task.height;
      canvas.className = "mask-canvas";
      canvas.dataset.class = state.classes[classIndex];
      canvas.style.setProperty("--colour", colourOf(state.classes[classIndex]));
      state.masks[classIndex] = canvas;
      masksLayer.append(canvas);
      renderShapes();
    }
    return canvas;
  }

  function takeSnapshot(canvas) {
    snapshot.width = canvas.width;
    snapshot.height = canvas.height;
    const context = snapshot.getContext("2d");
    context.clearRect(0, 0, snapshot.width, snapshot.height);
    context.drawImage(canvas, 0, 0);
  }

  function patchFromSnapshot(x, y, width, height) {
    const patch = document.createElement("canvas");
    patch.width = Math.max(1, width);
    patch.height = Math.max(1, height);
    patch.getContext("2d").drawImage(snapshot, x, y, patch.width, patch.height, 0, 0, patch.width, patch.height);
    return patch;
  }

  function strokeBegin(point) {
    const classIndex = state.classIndex;
    const canvas = maskCanvas(classIndex);
    takeSnapshot(canvas);
    state.gesture = {
      kind: "stroke",
      classIndex,
      canvas,
      last: point,
      box: { x1: point.x, y1: point.y, x2: point.x, y2: point.y },
    };
    paint(point, point);
  }

  function paint(from, to) {
    const gesture = state.gesture;
    const context = gesture.canvas.getContext("2d");
    context.globalCompositeOperation = state.eraser ? "destination-out" : "source-over";
    const colour = colourOf(state.classes[gesture.classIndex]);
    context.strokeStyle = colour;
    context.fillStyle = colour;
    context.lineWidth = state.brushSize;
    context.lineCap = "round";
    context.lineJoin = "round";
    context.beginPath();
    if (from.x === to.x && from.y === to.y) {
      context.arc(to.x, to.y, state.brushSize / 2, 0, 2 * Math.PI);
      context.fill();
    } else {
      context.moveTo(from.x, from.y);
      context.lineTo(to.x, to.y);
      context.stroke();
    }
    const box = gesture.box;
    box.x1 = Math.min(box.x1, to.x);
    box.y1 = Math.min(box.y1, to.y);
    box.x2 = Math.max(box.x2, to.x);
    box.y2 = Math.max(box.y2, to.y);
    gesture.last = to;
  }

  function strokeEnd() {
    const gesture = state.gesture;
    const canvas = gesture.canvas;
    const reach = state.brushSize / 2 + 2;
    const x = Math.max(0, Math.floor(gesture.box.x1 - reach));
    const y = Math.max(0, Math.floor(gesture.box.y1 - reach));
    const x2 = Math.min(canvas.width, Math.ceil(gesture.box.x2 + reach));
    const y2 = Math.min(canvas.height, Math.ceil(gesture.box.y2 + reach));
    if (x2 > x && y2 > y) {
      pushUndo({ type: "paint", classIndex: gesture.classIndex, x, y, patch: patchFromSnapshot(x, y, x2 - x, y2 - y) });
    }
  }

  function clearMask(classIndex) {
    const canvas = state.masks[classIndex];
    if (!canvas) return;
    takeSnapshot(canvas);
    pushUndo({ type: "paint", classIndex, x: 0, y: 0, patch: patchFromSnapshot(0, 0, canvas.width, canvas.height) });
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
    if (state.selected && state.selected.kind === "mask") state.selected = null;
    say(`Cleared the ${state.classes[classIndex]} brush mask (Z brings it back).`);
    render();
  }

  // A stored mask (white where the defect is) painted into its class's canvas; the undo step.
  async function maskLoad(annotation) {
    const picture = new Image();
    picture.src = annotation.mask_url;
    try {
      await picture.decode();
    } catch (error) {
      say(`The ${annotation.label} mask could not be loaded.`, true);
      return null;
    }
    const classIndex = state.classes.indexOf(annotation.label);
    const canvas = maskCanvas(classIndex);
    takeSnapshot(canvas);
    const step = { type: "paint", classIndex, x: 0, y: 0, patch: patchFromSnapshot(0, 0, canvas.width, canvas.height) };
    const scratch = document.createElement("canvas");
    scratch.width = canvas.width;
    scratch.height = canvas.height;
    const context = scratch.getContext("2d", { willReadFrequently: true });
    context.drawImage(picture, 0, 0, canvas.width, canvas.height);
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
    const [red, green, blue] = rgb(colourOf(annotation.label));
    const data = pixels.data;
    for (let i = 0; i < data.length; i += 4) {
      const painted = data[i] > 0 && data[i + 3] > 0;
      data[i] = red;
      data[i + 1] = green;
      data[i + 2] = blue;
      data[i + 3] = painted ? 255 : 0;
    }
    context.putImageData(pixels, 0, 0);
    const target = canvas.getContext("2d");
    target.globalCompositeOperation = "source-over";
    target.drawImage(scratch, 0, 0);
    return step;
  }

  function rgb(hex) {
    const value = parseInt(hex.slice(1), 16);
    return [(value >> 16) & 255, (value >> 8) & 255, value & 255];
  }

  // The class's mask as a PNG data URL (white, opaque where painted), or null when nothing is.
  // Half-transparent brush edges count as painted from half opacity on.
  function maskPng(canvas) {
    const scratch = document.createElement("canvas");
    scratch.width = canvas.width;
    scratch.height = canvas.height;
    const context = scratch.getContext("2d", { willReadFrequently: true });
    context.drawImage(canvas, 0, 0);
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
    const data = pixels.data;
    let painted = 0;
    for (let i = 0; i < data.length; i += 4) {
      const on = data[i + 3] >= 128 ? 255 : 0;
      if (on) painted++;
      data[i] = data[i + 1] = data[i + 2] = data[i + 3] = on;
    }
    if (!painted) return null;
    context.putImageData(pixels, 0, 0);
    return scratch.toDataURL("image/png");
  }

  // --- the label, as the API takes it --------------------------------------------------------
  function drawnShapes() {
    const shapes = state.shapes.map((shape) => ({ kind: shape.kind, label: shape.label, geometry: shape.geometry }));
    state.masks.forEach((canvas, classIndex) => {
      if (!canvas) return;
      const mask = maskPng(canvas);
      if (mask) shapes.push({ kind: "mask", label: state.classes[classIndex], mask });
    });
    return shapes;
  }

  function hasDrawing() {
    return state.shapes.length > 0 || state.masks.some(Boolean) || Boolean(state.polygon);
  }

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
    const entry = state.current;
    if (!hasDrawing() || state.noDefectArmed === entry.id) return true;
    state.noDefectArmed = entry.id;
    say("You have drawn regions: press N again to send “no defect” and drop them.", true);
    return false;
  }

  function finished(entry, message) {
    state.passed.push(entry.id);
    say(message);
    refreshFigures();
    advance();
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

  function submitLabel(noDefect) {
    const entry = state.current;
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
  function review(action, extra) {
    const entry = state.current;
    if (!entry || state.busy) return;
    const body = { action, comment: "", no_defect: false, shapes: [], ...extra };
    const done = { accept: "accepted", reject: "sent back", fix: "fixed" }[action];
    send(`${API}/submissions/${entry.id}/review/`, body, entry, `${entry.submission.author}'s label of task #${entry.task.id}: ${done}.`);
  }

  function openReject() {
    if (!state.current || state.busy) return;
    state.rejecting = true;
    $("reject-form").hidden = false;
    $("reject-comment").value = "";
    $("reject-comment").focus();
    say("Say what is wrong, then Enter (Esc cancels).");
  }

  function closeReject() {
    if (!REVIEW) return;
    state.rejecting = false;
    $("reject-form").hidden = true;
    if (document.activeElement === $("reject-comment")) $("reject-comment").blur();
  }

  function sendReject() {
    const comment = $("reject-comment").value.trim();
    if (!comment) {
      say("A rejection needs a comment: say what the labeler should change.", true);
      return;
    }
    closeReject();
    review("reject", { comment });
  }

  async function startFix() {
    const entry = state.current;
    if (!entry || state.editing || state.busy) return;
    closeReject();
    setEditing(true);
    state.tool = "select";
    renderTools();
    say("");
    await loadAnnotations(entry.submission.annotations, { undoable: false });
  }

  function cancelFix() {
    resetDrawing();
    setEditing(false);
    render();
    say("Fix discarded.");
  }

  function saveFix(noDefect) {
    if (!state.current || state.busy) return;
    if (noDefect) {
      if (!noDefectConfirmed()) return;
      review("fix", { no_defect: true });
      return;
    }
    const shapes = labelShapesOrWarn();
    if (shapes) review("fix", { shapes });
  }

  // --- help ----------------------------------------------------------------------------------
  function toggleHelp(open) {
    const help = $("help");
    help.hidden = open === undefined ? !help.hidden : !open;
  }

  // --- keys, buttons, mouse ------------------------------------------------------------------
  function escape() {
    if (!$("help").hidden) toggleHelp(false);
    else if (state.polygon) cancelPolygon();
    else if (state.gesture && state.gesture.kind === "box") {
      state.gesture = null;
      renderLive();
    } else if (state.selected) select(null);
    else if (REVIEW && state.rejecting) closeReject();
    else if (REVIEW && state.editing) cancelFix();
  }

  const actions = {
    help: () => toggleHelp(),
    escape,
    skip,
    undo,
    delete: deleteSelectedOrLast,
    acceptModel: acceptAllModelRegions,
    copyCurrent: copyCurrentLabel,
    submit: () => (REVIEW ? saveFix(false) : submitLabel(false)),
    noDefect: () => (REVIEW ? saveFix(true) : submitLabel(true)),
    enter: () => {
      if (state.polygon) closePolygon();
      else actions.submit();
    },
    accept: () => review("accept"),
    reject: openReject,
    fix: startFix,
    toggleReference: () => {
      state.showReference = !state.showReference;
      say(state.showReference ? "Showing the model's proposal and the current label." : "Reference hidden (H shows it).");
      render();
    },
    zoomIn: () => zoomBy(1.25),
    zoomOut: () => zoomBy(0.8),
    fit,
    left: () => panBy(60, 0),
    right: () => panBy(-60, 0),
    up: () => panBy(0, 60),
    down: () => panBy(0, -60),
    box: () => setTool("box"),
    polygon: () => setTool("polygon"),
    brush: () => setTool("brush"),
    eraser: () => setTool("eraser"),
    select: () => setTool("select"),
    smallerBrush: () => resizeBrush(1 / 1.25),
    largerBrush: () => resizeBrush(1.25),
  };

  const seeingKeys = {
    "?": "help", escape: "escape", h: "toggleReference",
    "+": "zoomIn", "=": "zoomIn", "-": "zoomOut", 0: "fit",
    arrowleft: "left", arrowright: "right", arrowup: "up", arrowdown: "down",
  };
  const drawingKeys = {
    ...seeingKeys,
    b: "box", g: "polygon", r: "brush", e: "eraser", v: "select",
    "[": "smallerBrush", "]": "largerBrush",
    z: "undo", backspace: "delete", delete: "delete",
    a: "acceptModel", c: "copyCurrent",
    enter: "enter", s: "submit", n: "noDefect",
  };
  const keymaps = {
    label: { ...drawingKeys, k: "skip" },
    fixing: drawingKeys,
    reviewing: { ...seeingKeys, a: "accept", r: "reject", f: "fix", k: "skip" },
  };

  function keymap() {
    if (!REVIEW) return keymaps.label;
    return state.editing ? keymaps.fixing : keymaps.reviewing;
  }

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target && ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName)) return;
    const key = event.key.toLowerCase();
    if (key === " ") {
      state.spaceDown = true;
      viewport.classList.add("panning");
      event.preventDefault();
      return;
    }
    if ((event.ctrlKey || event.metaKey) && key === "z" && !event.altKey) {
      event.preventDefault();
      actions.undo();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (!$("help").hidden && key !== "?" && key !== "escape") return;
    if (/^[1-9]$/.test(key) && state.editing) {
      event.preventDefault();
      chooseClass(Number(key) - 1);
      return;
    }
    const name = keymap()[key];
    if (name) {
      event.preventDefault();
      actions[name]();
    }
  });
  document.addEventListener("keyup", (event) => {
    if (event.key === " ") {
      state.spaceDown = false;
      viewport.classList.remove("panning");
      renderLive();
    }
  });

  document.querySelectorAll("button[data-action]").forEach((button) => {
    button.addEventListener("click", () => {
      button.blur(); // Enter and Space belong to the page's keys, not to the last button clicked
      actions[button.dataset.action]();
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

  function startPan(event) {
    state.gesture = { kind: "pan", clientX: event.clientX, clientY: event.clientY, panX: state.panX, panY: state.panY };
    viewport.classList.add("dragging");
  }

  viewport.addEventListener("mousedown", (event) => {
    if (!state.current || state.busy) return;
    event.preventDefault();
    if (event.button === 1 || (event.button === 0 && state.spaceDown)) {
      startPan(event);
      return;
    }
    if (event.button !== 0) return;
    const point = imagePoint(event);
    if (!state.editing) {
      startPan(event);
      return;
    }
    if (state.tool === "box") {
      state.gesture = { kind: "box", start: point, to: null, clientX: event.clientX, clientY: event.clientY };
    } else if (state.tool === "polygon") {
      polygonClick(point, event);
    } else if (state.tool === "brush") {
      strokeBegin(point);
    } else if (!clickAt(point)) {
      startPan(event);
    }
  });

  window.addEventListener("mousemove", (event) => {
    if (!state.current) return;
    const gesture = state.gesture;
    const point = imagePoint(event);
    state.pointer = point;
    if (gesture && gesture.kind === "pan") {
      state.panX = gesture.panX + event.clientX - gesture.clientX;
      state.panY = gesture.panY + event.clientY - gesture.clientY;
      applyTransform();
    } else if (gesture && gesture.kind === "box") {
      gesture.to = point;
    } else if (gesture && gesture.kind === "stroke") {
      paint(gesture.last, point);
    }
    renderLive();
  });

  window.addEventListener("mouseup", (event) => {
    const gesture = state.gesture;
    if (!gesture) return;
    state.gesture = null;
    viewport.classList.remove("dragging");
    if (gesture.kind === "box") finishBox(gesture, event);
    else if (gesture.kind === "stroke") {
      strokeEnd();
      renderShapes();
    }
    renderLive();
  });

  viewport.addEventListener("mouseleave", () => {
    state.pointer = null;
    renderLive();
  });
  viewport.addEventListener("auxclick", (event) => event.preventDefault());
  viewport.addEventListener(
    "wheel",
    (event) => {
      event.preventDefault();
      const bounds = viewport.getBoundingClientRect();
      zoomBy(event.deltaY < 0 ? 1.15 : 1 / 1.15, event.clientX - bounds.left, event.clientY - bounds.top);
    },
    { passive: false }
  );
  window.addEventListener("resize", fit);

  // --- queue figures -------------------------------------------------------------------------
  let figuresTimer = null;
  function refreshFigures() {
    clearTimeout(figuresTimer);
    figuresTimer = setTimeout(async () => {
      try {
        const figures = await api("GET", `${API}/stations/${slug}/figures/`);
        $("fig-open").textContent = figures.open;
        $("fig-random").textContent = figures.random_slice_open;
        $("fig-review").textContent = figures.in_review;
        $("fig-done").textContent = figures.done;
        const reasons = $("fig-reasons");
        reasons.replaceChildren();
        for (const [why, count] of Object.entries(figures.open_by_reason)) {
          const item = document.createElement("li");
          item.textContent = `${why}: ${count}`;
          reasons.append(item);
        }
        // Work arrived while the page had nothing: take it.
        const waiting = REVIEW ? figures.in_review : figures.open;
        if (!state.current && !state.claimingNext && waiting > 0) advance();
      } catch (error) {
        say(`Queue figures unavailable: ${error.detail}`, true);
      }
    }, 100);
  }
  setInterval(refreshFigures, FIGURES_EVERY_MS);

  // For the browser tests: whether a task is on screen with its image, and the drawing's state.
  window.loupeLabeling = {
    ready: () => Boolean(state.current && state.current.loaded && !state.busy && !state.advancing),
    idle: () => !state.busy && !state.advancing && !state.claimingNext,
    current: () => (state.current ? { id: state.current.id, task: state.current.task.id } : null),
    shapes: () => state.shapes.map((shape) => ({ ...shape })),
    masks: () => state.masks.map((canvas, index) => (canvas ? state.classes[index] : null)).filter(Boolean),
    view: () => ({ zoom: state.zoom, panX: state.panX, panY: state.panY }),
    tool: () => (state.tool === "brush" && state.eraser ? "eraser" : state.tool),
  };

  setClasses(state.classes);
  renderTools();
  refreshFigures();
  advance();
})();
