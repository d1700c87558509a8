// The station page: claim a unit, show it large with the model's regions, decide with one key.
// The next unit is claimed and its image decoded while the inspector looks at the current one
// (lib/claim_ahead.js), so a decision swaps it in at once; the decision itself is sent in the
// background.

import { api } from "./lib/api.js";
import { classFinder } from "./lib/class_finder.js";
import { ClaimAhead } from "./lib/claim_ahead.js";
import { $ } from "./lib/dom.js";
import { age, say } from "./lib/format.js";
import { RegionEditor } from "./lib/edit.js";
import { live, showOnBadge } from "./lib/live.js";
import { caption, maskImage, svg } from "./lib/regions.js";
import { Viewport } from "./lib/viewport.js";

const root = $("station");
if (root) start(root);

function start(root) {
  const UNDO_SECONDS = 10;
  const EXCLUDE_LIMIT = 100;
  const MODEL_COLOUR = "#ff3b30"; // the model's outlines (loupe.css: .region.model)
  const DRAFT_COLOUR = "#2fd3ff"; // the inspector's regions (loupe.css: .region.draft)
  const CAPTION_SCREEN_PIXELS = 16; // room a caption needs above its box, on the screen
  const PAN_STEP = 60;
  const classes = root.dataset.classes ? root.dataset.classes.split(",") : [];
  const image = $("unit-image");
  const overlay = $("overlay");
  const stage = $("stage");
  const view = new Viewport($("viewport"), stage, { maxZoom: 20 });

  // What the inspector is doing with the unit on screen.
  const desk = {
    lastDecided: null, // {entry, verdict, at}: what Z undoes
    drafts: [], // the inspector's regions: {x, y, width, height, label} (label null: no class yet)
    classIndex: null, // the chosen defect class; per unit: the model's class, none when blind
    askingClass: false, // F was pressed with no class chosen: the next class chosen fails the unit
    drawing: false,
    showModel: true,
    oldestAt: null,
  };

  const queue = new ClaimAhead({
    claim: (exclude) => api("POST", root.dataset.claimUrl, { exclude }),
    entry: (unit) => ({ id: unit.id, unit, imageUrl: unit.image_url }),
    release: (id) => `/api/v1/units/${id}/release/`,
    show,
    onError: (error) => say(`could not claim a unit: ${error.message}`, true),
    excludeLimit: EXCLUDE_LIMIT,
  });
  const currentUnit = () => queue.current && queue.current.unit;

  // Keypress-to-image timings, read by the browser benchmark (bench/station_page.py).
  window.loupeTimings = [];
  window.loupeNextReady = () => queue.nextReady;

  // --- showing a unit ------------------------------------------------------------------------
  function show(entry) {
    desk.classIndex = entry ? modelClassIndex(entry.unit) : null;
    desk.askingClass = false;
    desk.drafts = [];
    desk.drawing = false;
    $("btn-draw").classList.remove("on");
    renderDrafts();
    if (!entry) {
      image.removeAttribute("src");
      overlay.innerHTML = "";
      $("empty").hidden = false;
      stage.hidden = true;
      view.show(null);
      $("unit-serial").textContent = "–";
      $("unit-reason").textContent = "–";
      $("unit-model").textContent = "–";
      return;
    }
    const unit = entry.unit;
    $("empty").hidden = true;
    stage.hidden = false;
    image.src = entry.img.src; // decoded already: the browser paints it from memory
    image.width = unit.width;
    image.height = unit.height;
    overlay.setAttribute("viewBox", `0 0 ${unit.width} ${unit.height}`);
    overlay.setAttribute("width", unit.width);
    overlay.setAttribute("height", unit.height);
    view.show(unit.width, unit.height);
    $("unit-serial").textContent = unit.serial;
    $("unit-reason").textContent = describeReason(unit);
    if (unit.blind) {
      $("unit-model").textContent = "blind: decide without the model";
    } else if (unit.model) {
      const m = unit.model;
      $("unit-model").textContent = `model ${m.version}: ${m.verdict} (${m.label}), score ${m.score.toFixed(3)}`;
    } else {
      $("unit-model").textContent = "no model output";
    }
    if (unit.decision) say(`already decided ${unit.decision}: a new verdict overrides it`);
    drawOverlay();
  }

  // The class the model names for the unit (its top class, else its best region's), as an index
  // into the station's classes; null at blind levels, without model output, or for "no defect".
  function modelClassIndex(unit) {
    if (unit.blind || !unit.model) return null;
    if (classes.includes(unit.model.label)) return classes.indexOf(unit.model.label);
    const named = unit.model.regions.filter((region) => classes.includes(region.label));
    if (!named.length) return null;
    const best = named.reduce((top, region) => (region.score > top.score ? region : top));
    return classes.indexOf(best.label);
  }

  function describeReason(unit) {
    const reasons = {
      human: "human-only station",
      shadow: "shadow mode (blind)",
      assisted: "AI-assisted",
      deferred: "the model was not sure",
      audit: "random audit (blind)",
      no_model: "no model could decide",
    };
    // A frame the model cannot judge says why ("frame check: uniform frame (...)"): a person
    // decides it, and a run of them means the camera or its lighting needs looking at.
    if (unit.queue_reason === "frame_check" && unit.frame_check) return unit.frame_check;
    return reasons[unit.queue_reason] || unit.queue_reason || unit.status;
  }

  // A region's outline with its caption above it (inside its top when the box is at the image's
  // top edge); a model region's mask, when it has one, fills its cells under the outline.
  function box(region, kind, label) {
    const group = svg("g", { class: `region ${kind}` });
    const mask = kind === "model" ? maskImage(region, MODEL_COLOUR) : null;
    if (mask) group.append(mask);
    group.append(svg("rect", { x: region.x, y: region.y, width: region.width, height: region.height }));
    const roomAbove = region.y * view.zoom >= CAPTION_SCREEN_PIXELS;
    group.append(caption(region.x, region.y, label, roomAbove ? "above" : "inside"));
    return group;
  }

  function drawOverlay() {
    overlay.innerHTML = "";
    const unit = currentUnit();
    if (!unit) return;
    if (desk.showModel && !unit.blind && unit.model) {
      for (const region of unit.model.regions) {
        overlay.append(box(region, "model", `${region.label} ${region.score.toFixed(2)}`));
      }
    }
    for (const region of desk.drafts) overlay.append(box(region, "draft", region.label || "?"));
    regionEditor.draw(overlay, DRAFT_COLOUR);
  }

  function renderDrafts() {
    const list = $("drafts");
    list.innerHTML = "";
    for (const region of desk.drafts) {
      const item = document.createElement("li");
      item.textContent = `${region.label || "no class yet"} at ${Math.round(region.x)},${Math.round(region.y)} ` +
        `(${Math.round(region.width)}×${Math.round(region.height)})`;
      list.append(item);
    }
    renderClasses();
  }

  function renderClasses() {
    document.querySelectorAll("#classes li").forEach((item, index) => {
      item.classList.toggle("on", index === desk.classIndex);
    });
    $("classes").classList.toggle("asking", desk.askingClass);
  }

  // --- deciding ------------------------------------------------------------------------------
  // A fail needs a class: the chosen one, or each of the inspector's regions' own.
  function failNeedsClass() {
    return desk.drafts.length ? desk.drafts.some((region) => !region.label) : desk.classIndex === null;
  }

  function askForClass() {
    desk.askingClass = true;
    renderClasses();
    say("Fail as which defect? Press its number (1–9) or click it; Esc cancels.", true);
  }

  function decide(verdict) {
    const entry = queue.current;
    if (!entry) return;
    if (verdict === "fail" && failNeedsClass()) {
      askForClass();
      return;
    }
    const started = performance.now();
    const label = chosenLabel();
    const regions = verdict === "fail" ? desk.drafts.map((r) => ({ ...r })) : [];
    const body = { verdict };
    if (verdict === "fail") {
      body.regions = regions;
      body.defect_classes = regions.length ? [] : [label];
    }
    desk.lastDecided = { entry, verdict, at: Date.now() };
    queue.finish(entry).then(() => {
      // two frames: the new image is on screen
      requestAnimationFrame(() =>
        requestAnimationFrame(() => window.loupeTimings.push(performance.now() - started))
      );
    });
    api("POST", `/api/v1/units/${entry.id}/decision/`, body)
      .then(() => {
        say(`${entry.unit.serial}: ${verdict}`);
        refreshQueue();
      })
      .catch((error) => say(`${entry.unit.serial} NOT saved: ${error.message}`, true));
  }

  function undo() {
    const last = desk.lastDecided;
    if (!last || Date.now() - last.at > UNDO_SECONDS * 1000) {
      say(`nothing to undo (only within ${UNDO_SECONDS} s)`, true);
      return;
    }
    desk.lastDecided = null;
    // The current unit stays claimed and comes right after; the undone one is decided again
    // (recorded as an override of the first verdict).
    const entry = last.entry;
    entry.unit.decision = last.verdict;
    queue.putBack(entry);
    say(`${entry.unit.serial}: decide again`);
  }

  function skip() {
    queue.skip();
  }

  // --- drawing -------------------------------------------------------------------------------
  // Pointer events (mouse, pen, finger). A press on one of the inspector's regions selects it and
  // drags it, its handles resize it (lib/edit.js, the labeling page's mechanism); elsewhere, D's
  // drawing mode draws a new region, else the drag pans.
  const regionEditor = wireRegionEditing();
  let drawFrom = null; // the image point a drawing drag started at
  $("viewport").addEventListener("pointerdown", (event) => {
    if (!queue.current || (event.button !== 0 && event.button !== 1)) return;
    event.preventDefault();
    if (event.button === 0 && regionEditor.press(event)) return;
    if (desk.drawing && event.button === 0) drawFrom = view.imagePoint(event);
    else view.startPan(event);
  });
  window.addEventListener("pointermove", (event) => {
    if (!drawFrom) return;
    drawOverlay();
    overlay.append(box(view.box(drawFrom, view.imagePoint(event)), "draft", chosenLabel() || "?"));
  });
  window.addEventListener("pointerup", (event) => {
    if (!drawFrom) return;
    const region = view.box(drawFrom, view.imagePoint(event));
    drawFrom = null;
    if (region.width >= 2 && region.height >= 2) {
      desk.drafts.push({ ...region, label: chosenLabel() });
      renderDrafts();
    }
    drawOverlay();
  });

  function wireRegionEditing() {
    return new RegionEditor({
      view,
      regions: () => desk.drafts,
      size: () => ({ width: currentUnit().width, height: currentUnit().height }),
      onChange: () => {
        renderDrafts();
        drawOverlay();
      },
    });
  }

  function takeModelRegions() {
    const unit = currentUnit();
    if (!unit || unit.blind || !unit.model) return;
    for (const region of unit.model.regions) {
      const label = classes.includes(region.label) ? region.label : chosenLabel();
      desk.drafts.push({ x: region.x, y: region.y, width: region.width, height: region.height, label });
    }
    renderDrafts();
    drawOverlay();
  }

  function chosenLabel() {
    return desk.classIndex === null ? null : classes[desk.classIndex];
  }

  // The class of what is drawn next and of a fail. Regions keep the class they were drawn with;
  // those drawn before any class was chosen take this one. After F asked for a class, this fails.
  function chooseClass(index) {
    if (index >= classes.length) return;
    desk.classIndex = index;
    for (const region of desk.drafts) region.label = region.label || classes[index];
    renderDrafts();
    drawOverlay();
    if (desk.askingClass) {
      desk.askingClass = false;
      decide("fail");
    }
  }

  function cancelAsking() {
    if (!desk.askingClass) return;
    desk.askingClass = false;
    renderClasses();
    say("Fail cancelled: choose a class, then F.");
  }

  // --- keys and buttons ----------------------------------------------------------------------
  const actions = {
    p: () => decide("pass"),
    f: () => decide("fail"),
    d: () => {
      desk.drawing = !desk.drawing;
      $("btn-draw").classList.toggle("on", desk.drawing);
    },
    a: takeModelRegions,
    s: skip,
    z: undo,
    escape: cancelAsking,
    h: () => {
      desk.showModel = !desk.showModel;
      drawOverlay();
    },
    "+": () => view.zoomBy(1.25),
    "=": () => view.zoomBy(1.25),
    "-": () => view.zoomBy(0.8),
    0: () => view.fit(),
    backspace: () => {
      desk.drafts.pop();
      renderDrafts();
      drawOverlay();
    },
    arrowleft: () => view.panBy(PAN_STEP, 0),
    arrowright: () => view.panBy(-PAN_STEP, 0),
    arrowup: () => view.panBy(0, PAN_STEP),
    arrowdown: () => view.panBy(0, -PAN_STEP),
  };

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target && ["INPUT", "TEXTAREA"].includes(event.target.tagName)) return;
    const key = event.key.toLowerCase();
    if (/^[1-9]$/.test(key)) {
      chooseClass(Number(key) - 1);
      event.preventDefault();
      return;
    }
    const action = actions[key];
    if (action) {
      event.preventDefault();
      action();
    }
  });
  document.querySelectorAll(".actions button").forEach((button) => {
    button.addEventListener("click", () => actions[button.dataset.key]());
  });
  document.querySelectorAll("#classes li").forEach((item, index) => {
    item.addEventListener("click", () => chooseClass(index));
  });
  // Past nine classes (the number keys' reach), a finder picks the others by name.
  if ($("class-find")) classFinder($("class-find"), $("classes"), chooseClass);

  // --- live figures --------------------------------------------------------------------------
  let queueTimer = null;
  function refreshQueue() {
    clearTimeout(queueTimer);
    queueTimer = setTimeout(async () => {
      try {
        const figures = await api("GET", root.dataset.queueUrl);
        $("queue-pending").textContent = figures.pending;
        desk.oldestAt = figures.oldest_pending_seconds === null ? null
          : Date.now() - figures.oldest_pending_seconds * 1000;
        $("queue-oldest").textContent = age(figures.oldest_pending_seconds);
        if (figures.mine) {
          $("my-count").textContent = figures.mine.decisions;
          $("my-pace").textContent = figures.mine.per_hour === null ? "–" : Math.round(figures.mine.per_hour);
        }
      } catch (error) {
        say(`queue figures unavailable: ${error.message}`, true);
      }
    }, 150);
  }
  setInterval(() => {
    $("queue-oldest").textContent = desk.oldestAt === null ? "–" : age((Date.now() - desk.oldestAt) / 1000);
  }, 1000);
  setInterval(refreshQueue, 15000);

  const badge = showOnBadge($("live"));
  function listen() {
    live(root.dataset.eventsPath, {
      onOpen: () => {
        refreshQueue();
        if (!queue.current) queue.advance();
      },
      onMessage: (event) => {
        refreshQueue();
        if (event.type === "unit.received" && event.unit.status === "pending") {
          if (!queue.current) queue.advance();
          else if (!queue.next) queue.claimNext();
        }
      },
      onState: (state, words) => {
        badge(state, words);
        if (state === "stopped") say(`Live updates stopped: ${words}.`, true);
      },
    });
  }

  refreshQueue();
  queue.advance().then(listen);
}
