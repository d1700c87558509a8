// The station page: claim a unit, show it large with the model's regions, decide with one key.
// The next unit is claimed and its image decoded while the inspector looks at the current one,
// so a decision swaps it in at once; the decision itself is sent in the background.
(function () {
  "use strict";

  const root = document.getElementById("station");
  if (!root) return;
  const UNDO_SECONDS = 10;
  const classes = root.dataset.classes ? root.dataset.classes.split(",") : [];
  const claimUrl = root.dataset.claimUrl;
  const queueUrl = root.dataset.queueUrl;
  const $ = (id) => document.getElementById(id);
  const image = $("unit-image");
  const overlay = $("overlay");
  const stage = $("stage");
  const viewport = $("viewport");
  const MODEL_COLOUR = "#ff3b30"; // the model's outlines (loupe.css: .region.model)
  const CAPTION_SCREEN_PIXELS = 16; // room a caption needs above its box, on the screen

  const state = {
    current: null, // {unit, img}
    next: null, // a claimed unit whose image is loading or loaded: {unit, img, ready}
    claimingNext: null,
    skipped: [],
    decided: [], // ids decided here: their decision may still be on its way to the server
    lastDecided: null, // {unit, img, at}
    drafts: [], // the inspector's regions: {x, y, width, height, label} (label null: no class yet)
    classIndex: null, // the chosen defect class; per unit: the model's class, none when blind
    askingClass: false, // F was pressed with no class chosen: the next class chosen fails the unit
    drawing: false,
    showModel: true,
    zoom: 1,
    panX: 0,
    panY: 0,
    oldestAt: null,
  };
  // Keypress-to-image timings, read by the browser benchmark (bench/station_page.py).
  window.loupeTimings = [];
  window.loupeNextReady = () => !state.claimingNext && (!state.next || state.next.loaded);

  const { api } = window.loupe; // static/js/api.js
  const { svg, caption, maskImage } = window.loupeRegions; // static/js/regions.js

  function say(text, bad) {
    const status = $("status");
    status.textContent = text;
    status.className = "status" + (bad ? " bad" : "");
  }

  // --- claiming and preloading ---------------------------------------------------------------
  function heldIds() {
    const ids = [...state.skipped.slice(-50), ...state.decided.slice(-50)];
    if (state.current) ids.push(state.current.unit.id);
    if (state.next) ids.push(state.next.unit.id);
    return ids;
  }

  function preload(unit) {
    const img = new Image();
    img.src = unit.image_url;
    const entry = { unit, img, loaded: false };
    entry.ready = img.decode().then(
      () => (entry.loaded = true),
      () => false
    );
    return entry;
  }

  async function claim() {
    const unit = await api("POST", claimUrl, { exclude: heldIds() });
    return unit ? preload(unit) : null;
  }

  function claimNext() {
    if (state.next || state.claimingNext) return state.claimingNext;
    state.claimingNext = claim()
      .then((entry) => {
        state.next = entry;
        return entry;
      })
      .catch((error) => say(`could not claim a unit: ${error.message}`, true))
      .finally(() => {
        state.claimingNext = null;
      });
    return state.claimingNext;
  }

  async function advance() {
    // Show the prefetched unit now; claim the one after it in the background.
    let entry = state.next;
    state.next = null;
    if (!entry) {
      await claimNext();
      entry = state.next;
      state.next = null;
    }
    show(entry);
    claimNext();
  }

  // --- showing a unit ------------------------------------------------------------------------
  function show(entry) {
    state.current = entry;
    state.classIndex = entry ? modelClassIndex(entry.unit) : null;
    state.askingClass = false;
    state.drafts = [];
    state.drawing = false;
    $("btn-draw").classList.remove("on");
    renderDrafts();
    if (!entry) {
      image.removeAttribute("src");
      overlay.innerHTML = "";
      $("empty").hidden = false;
      stage.hidden = true;
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
    fit();
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
    const roomAbove = region.y * state.zoom >= CAPTION_SCREEN_PIXELS;
    group.append(caption(region.x, region.y, label, roomAbove ? "above" : "inside"));
    return group;
  }

  function drawOverlay() {
    overlay.innerHTML = "";
    const unit = state.current && state.current.unit;
    if (!unit) return;
    if (state.showModel && !unit.blind && unit.model) {
      for (const region of unit.model.regions) {
        overlay.append(box(region, "model", `${region.label} ${region.score.toFixed(2)}`));
      }
    }
    for (const region of state.drafts) overlay.append(box(region, "draft", region.label || "?"));
  }

  function renderDrafts() {
    const list = $("drafts");
    list.innerHTML = "";
    for (const region of state.drafts) {
      const item = document.createElement("li");
      item.textContent = `${region.label || "no class yet"} at ${Math.round(region.x)},${Math.round(region.y)} ` +
        `(${Math.round(region.width)}×${Math.round(region.height)})`;
      list.append(item);
    }
    renderClasses();
  }

  function renderClasses() {
    document.querySelectorAll("#classes li").forEach((item, index) => {
      item.classList.toggle("on", index === state.classIndex);
    });
    $("classes").classList.toggle("asking", state.askingClass);
  }

  // --- deciding ------------------------------------------------------------------------------
  // A fail needs a class: the chosen one, or each of the inspector's regions' own.
  function failNeedsClass() {
    return state.drafts.length ? state.drafts.some((region) => !region.label) : state.classIndex === null;
  }

  function askForClass() {
    state.askingClass = true;
    renderClasses();
    say("Fail as which defect? Press its number (1–9) or click it; Esc cancels.", true);
  }

  function decide(verdict) {
    const entry = state.current;
    if (!entry) return;
    if (verdict === "fail" && failNeedsClass()) {
      askForClass();
      return;
    }
    const started = performance.now();
    const label = chosenLabel();
    const regions = verdict === "fail" ? state.drafts.map((r) => ({ ...r })) : [];
    const body = { verdict };
    if (verdict === "fail") {
      body.regions = regions;
      body.defect_classes = regions.length ? [] : [label];
    }
    state.lastDecided = { entry, verdict, at: Date.now() };
    state.decided.push(entry.unit.id);
    advance()
      .then(() => state.current && state.current.ready)
      .then(() => {
        // two frames: the new image is on screen
        requestAnimationFrame(() =>
          requestAnimationFrame(() => window.loupeTimings.push(performance.now() - started))
        );
      });
    api("POST", `/api/v1/units/${entry.unit.id}/decision/`, body)
      .then(() => {
        say(`${entry.unit.serial}: ${verdict}`);
        refreshQueue();
      })
      .catch((error) => say(`${entry.unit.serial} NOT saved: ${error.message}`, true));
  }

  function undo() {
    const last = state.lastDecided;
    if (!last || Date.now() - last.at > UNDO_SECONDS * 1000) {
      say(`nothing to undo (only within ${UNDO_SECONDS} s)`, true);
      return;
    }
    state.lastDecided = null;
    // The current unit stays claimed and comes right after; the undone one is decided again
    // (recorded as an override of the first verdict).
    if (state.current) {
      if (state.next) api("POST", `/api/v1/units/${state.next.unit.id}/release/`).catch(() => {});
      state.next = state.current;
    }
    const entry = last.entry;
    entry.unit.decision = last.verdict;
    show(entry);
    say(`${entry.unit.serial}: decide again`);
  }

  function skip() {
    const entry = state.current;
    if (!entry) return;
    state.skipped.push(entry.unit.id);
    api("POST", `/api/v1/units/${entry.unit.id}/release/`).catch(() => {});
    advance();
  }

  // --- zoom, pan, drawing --------------------------------------------------------------------
  function applyTransform() {
    stage.style.transform = `translate(${state.panX}px, ${state.panY}px) scale(${state.zoom})`;
    stage.style.setProperty("--zoom", state.zoom); // lines and captions keep their screen size
  }

  function fit() {
    const unit = state.current && state.current.unit;
    if (!unit) return;
    const scale = Math.min(viewport.clientWidth / unit.width, viewport.clientHeight / unit.height);
    state.zoom = scale;
    state.panX = (viewport.clientWidth - unit.width * scale) / 2;
    state.panY = (viewport.clientHeight - unit.height * scale) / 2;
    applyTransform();
  }

  function zoomBy(factor, centerX, centerY) {
    const x = centerX === undefined ? viewport.clientWidth / 2 : centerX;
    const y = centerY === undefined ? viewport.clientHeight / 2 : centerY;
    const zoom = Math.min(20, Math.max(0.05, state.zoom * factor));
    state.panX = x - ((x - state.panX) * zoom) / state.zoom;
    state.panY = y - ((y - state.panY) * zoom) / state.zoom;
    state.zoom = zoom;
    applyTransform();
  }

  function imagePoint(event) {
    const bounds = viewport.getBoundingClientRect();
    return {
      x: (event.clientX - bounds.left - state.panX) / state.zoom,
      y: (event.clientY - bounds.top - state.panY) / state.zoom,
    };
  }

  let drag = null;
  viewport.addEventListener("mousedown", (event) => {
    if (!state.current) return;
    event.preventDefault();
    drag = { start: imagePoint(event), x: event.clientX, y: event.clientY, panX: state.panX, panY: state.panY };
  });
  window.addEventListener("mousemove", (event) => {
    if (!drag) return;
    if (state.drawing) {
      const point = imagePoint(event);
      drawOverlay();
      overlay.append(box(rectangle(drag.start, point), "draft", chosenLabel() || "?"));
    } else {
      state.panX = drag.panX + event.clientX - drag.x;
      state.panY = drag.panY + event.clientY - drag.y;
      applyTransform();
    }
  });
  window.addEventListener("mouseup", (event) => {
    if (!drag) return;
    if (state.drawing) {
      const region = rectangle(drag.start, imagePoint(event));
      if (region.width >= 2 && region.height >= 2) {
        state.drafts.push({ ...region, label: chosenLabel() });
        renderDrafts();
      }
      drawOverlay();
    }
    drag = null;
  });
  viewport.addEventListener("wheel", (event) => {
    event.preventDefault();
    const bounds = viewport.getBoundingClientRect();
    zoomBy(event.deltaY < 0 ? 1.15 : 1 / 1.15, event.clientX - bounds.left, event.clientY - bounds.top);
  }, { passive: false });

  function rectangle(a, b) {
    const unit = state.current.unit;
    const clamp = (value, limit) => Math.min(Math.max(value, 0), limit);
    const x1 = clamp(Math.min(a.x, b.x), unit.width);
    const y1 = clamp(Math.min(a.y, b.y), unit.height);
    const x2 = clamp(Math.max(a.x, b.x), unit.width);
    const y2 = clamp(Math.max(a.y, b.y), unit.height);
    return { x: x1, y: y1, width: x2 - x1, height: y2 - y1 };
  }

  function takeModelRegions() {
    const unit = state.current && state.current.unit;
    if (!unit || unit.blind || !unit.model) return;
    for (const region of unit.model.regions) {
      const label = classes.includes(region.label) ? region.label : chosenLabel();
      state.drafts.push({ x: region.x, y: region.y, width: region.width, height: region.height, label });
    }
    renderDrafts();
    drawOverlay();
  }

  function chosenLabel() {
    return state.classIndex === null ? null : classes[state.classIndex];
  }

  // The class of what is drawn next and of a fail. Regions keep the class they were drawn with;
  // those drawn before any class was chosen take this one. After F asked for a class, this fails.
  function chooseClass(index) {
    if (index >= classes.length) return;
    state.classIndex = index;
    for (const region of state.drafts) region.label = region.label || classes[index];
    renderDrafts();
    drawOverlay();
    if (state.askingClass) {
      state.askingClass = false;
      decide("fail");
    }
  }

  function cancelAsking() {
    if (!state.askingClass) return;
    state.askingClass = false;
    renderClasses();
    say("Fail cancelled: choose a class, then F.");
  }

  // --- keys and buttons ----------------------------------------------------------------------
  const actions = {
    p: () => decide("pass"),
    f: () => decide("fail"),
    d: () => {
      state.drawing = !state.drawing;
      $("btn-draw").classList.toggle("on", state.drawing);
    },
    a: takeModelRegions,
    s: skip,
    z: undo,
    escape: cancelAsking,
    h: () => {
      state.showModel = !state.showModel;
      drawOverlay();
    },
    "+": () => zoomBy(1.25),
    "=": () => zoomBy(1.25),
    "-": () => zoomBy(0.8),
    0: fit,
    backspace: () => {
      state.drafts.pop();
      renderDrafts();
      drawOverlay();
    },
    arrowleft: () => { state.panX += 60; applyTransform(); },
    arrowright: () => { state.panX -= 60; applyTransform(); },
    arrowup: () => { state.panY += 60; applyTransform(); },
    arrowdown: () => { state.panY -= 60; applyTransform(); },
  };

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target && ["INPUT", "TEXTAREA"].includes(event.target.tagName)) return;
    const key = event.key.toLowerCase();
    if (/^[1-9]$/.test(key) && key !== "0") {
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
  window.addEventListener("resize", fit);

  // --- live figures --------------------------------------------------------------------------
  function age(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 60) return `${Math.floor(seconds)} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  let queueTimer = null;
  function refreshQueue() {
    clearTimeout(queueTimer);
    queueTimer = setTimeout(async () => {
      try {
        const figures = await api("GET", queueUrl);
        $("queue-pending").textContent = figures.pending;
        state.oldestAt = figures.oldest_pending_seconds === null ? null
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
    $("queue-oldest").textContent = state.oldestAt === null ? "–" : age((Date.now() - state.oldestAt) / 1000);
  }, 1000);
  setInterval(refreshQueue, 15000);

  let retry = 500;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${root.dataset.eventsPath}`);
    socket.onopen = () => {
      retry = 500;
      $("live").textContent = "live";
      $("live").className = "ok";
      refreshQueue();
      if (!state.current) advance();
    };
    socket.onmessage = (message) => {
      const event = JSON.parse(message.data);
      refreshQueue();
      if (event.type === "unit.received" && event.unit.status === "pending") {
        if (!state.current) advance();
        else if (!state.next) claimNext();
      }
    };
    socket.onclose = () => {
      $("live").textContent = "offline, reconnecting";
      $("live").className = "bad";
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }

  refreshQueue();
  advance().then(() => {
    connect();
  });
})();
