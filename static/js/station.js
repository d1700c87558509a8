// The station page: claim a unit, show it large with the model's regions, decide with one key.
// The next unit is claimed and its image decoded while the inspector looks at the current one
// (lib/claim_ahead.js), so a decision swaps it in at once; the decision itself is sent in the
// background. Its keys are lib/keymap.js's (one map for the station, labeling and review pages);
// units skipped are listed (Skipped) to go back to while they are still pending.

import { api } from "./lib/api.js";
import { classFinder } from "./lib/class_finder.js";
import { ClaimAhead } from "./lib/claim_ahead.js";
import { $ } from "./lib/dom.js";
import { age, say } from "./lib/format.js";
import { RegionEditor } from "./lib/edit.js";
import { bindKeys, keyCap, labelButtons, renderHelp } from "./lib/keymap.js";
import { live, showOnBadge } from "./lib/live.js";
import { outlined } from "./lib/regions.js";
import { Viewport } from "./lib/viewport.js";

const root = $("station");
if (root) start(root);

function start(root) {
  const UNDO_SECONDS = 10;
  const EXCLUDE_LIMIT = 100;
  const MODEL_COLOUR = "#ff3b30"; // the model's outlines (loupe.css: .region.model)
  const DRAFT_COLOUR = "#2fd3ff"; // the inspector's regions (loupe.css: .region.draft)
  const PAN_STEP = 60;
  const classes = root.dataset.classes ? root.dataset.classes.split(",") : [];
  const image = $("unit-image");
  const overlay = $("overlay");
  const stage = $("stage");
  const view = new Viewport($("viewport"), stage, { maxZoom: 20, zoomLabel: $("zoom-level") });
  // What the empty queue disables (undo stays: the last unit decided may be taken back).
  const UNIT_CONTROLS = ["btn-pass", "btn-fail", "btn-draw", "btn-accept", "btn-skip"];

  // What the inspector is doing with the unit on screen.
  const desk = {
    lastDecided: null, // {entry, verdict, at}: what Z undoes
    drafts: [], // the inspector's regions: {x, y, width, height, label} (label null: no class yet)
    // The regions' edit history on this unit: earlier and undone states of `drafts` (copies).
    past: [],
    future: [],
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
    desk.past = [];
    desk.future = [];
    desk.drawing = false;
    $("btn-draw").classList.remove("on");
    for (const id of UNIT_CONTROLS) $(id).disabled = !entry;
    $("classes").classList.toggle("disabled", !entry);
    renderDrafts();
    if (!entry) {
      image.removeAttribute("src");
      overlay.innerHTML = "";
      $("empty").hidden = false;
      $("empty").textContent = emptyLine();
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
    $("unit-reason").textContent = unit.why;
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

  // Why nothing is on screen; the controls wait, disabled, for a unit to arrive over the socket.
  function emptyLine() {
    const waiting = skipped.units.length;
    if (!waiting) return "The queue is empty: new units appear here live as the line posts them.";
    const units = waiting === 1 ? "1 unit" : `${waiting} units`;
    const are = waiting === 1 ? "is" : "are";
    return `Nothing else waits for you: the ${units} you skipped ${are} under Skipped (${keyCap("skipped")}). ` +
      "New units appear here live as the line posts them.";
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

  // A region's outline and caption (lib/regions.js); a model region's mask, when it has one,
  // fills its cells under the outline.
  function box(region, kind, label) {
    return outlined(region, { kind, label, zoom: view.zoom, maskColour: kind === "model" ? MODEL_COLOUR : null });
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

  // --- the regions' history on this unit: every change can be undone and redone --------------
  function regionsCopy() {
    return desk.drafts.map((region) => ({ ...region }));
  }
  // Call before changing the regions: the state to go back to.
  function remember(state = regionsCopy()) {
    desk.past.push(state);
    desk.future = [];
  }
  function restore(from, to) {
    to.push(regionsCopy());
    desk.drafts = from.pop();
    regionEditor.selected = null;
    renderDrafts();
    drawOverlay();
  }
  function redo() {
    if (!desk.future.length) return say("nothing to redo", true);
    restore(desk.future, desk.past);
  }

  function undo() {
    if (desk.past.length) return restore(desk.past, desk.future);
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
    const entry = queue.current;
    const released = queue.skip();
    if (!released) return;
    skipped.add(entry.unit, released);
    say(`${entry.unit.serial} skipped: back in the queue (Skipped lists it)`);
  }

  // --- skipped units -------------------------------------------------------------------------
  // The units this inspector skipped here in this browser session, kept while still pending:
  // going back to one claims it (the server says why not: decided meanwhile, or someone else's).
  const skipped = {
    storageKey: `loupe.skipped.${root.dataset.slug}`,
    units: [], // {id, serial}, oldest first
    releases: new Map(), // id -> the release on its way: a claim waits for it
    load() {
      try {
        this.units = JSON.parse(sessionStorage.getItem(this.storageKey) || "[]");
      } catch {
        this.units = [];
      }
      this.render();
    },
    save() {
      sessionStorage.setItem(this.storageKey, JSON.stringify(this.units));
      this.render();
    },
    add(unit, released) {
      this.units = this.units.filter((item) => item.id !== unit.id);
      this.units.push({ id: unit.id, serial: unit.serial });
      this.releases.set(unit.id, released);
      this.save();
    },
    forget(id) {
      if (!this.units.some((item) => item.id === id)) return;
      this.units = this.units.filter((item) => item.id !== id);
      this.save();
    },
    get open() {
      return !$("skipped-list").hidden;
    },
    toggle(open = !this.open) {
      $("skipped-list").hidden = !open;
      $("btn-skipped").setAttribute("aria-expanded", String(open));
      if (!open) return;
      this.refresh();
      const first = $("skipped-list").querySelector("button");
      if (first) first.focus(); // Enter goes back to it, Tab to the next
    },
    // Drop those decided meanwhile (the live socket drops them as they are decided too).
    async refresh() {
      const checked = await Promise.all(
        this.units.map((item) =>
          api("GET", `/api/v1/units/${item.id}/`).then(
            (unit) => (unit.status === "pending" ? null : item.id),
            (error) => (error.status === 404 ? item.id : null)
          )
        )
      );
      const gone = new Set(checked.filter((id) => id !== null));
      if (!gone.size) return;
      this.units = this.units.filter((item) => !gone.has(item.id));
      this.save();
    },
    render() {
      $("skipped-count").textContent = this.units.length;
      $("btn-skipped").disabled = !this.units.length;
      const list = $("skipped-list");
      list.replaceChildren(
        ...this.units.map((item) => {
          const row = document.createElement("li");
          const button = document.createElement("button");
          button.type = "button";
          button.dataset.unit = item.id;
          button.textContent = `${item.serial}: judge it now`;
          button.addEventListener("click", () => this.goBack(item));
          row.append(button);
          return row;
        })
      );
      if (!this.units.length) this.toggle(false);
      if (!queue.current && !$("empty").hidden) $("empty").textContent = emptyLine();
    },
    async goBack(item) {
      if (queue.current && queue.current.id === item.id) return;
      await this.releases.get(item.id);
      let body;
      try {
        body = await api("POST", `/api/v1/units/${item.id}/claim/`);
      } catch (error) {
        say(`Cannot go back to ${item.serial}: ${error.detail}`, true);
        if (error.status === 409 || error.status === 404) this.refresh();
        return;
      }
      this.forget(item.id);
      this.releases.delete(item.id);
      this.toggle(false);
      queue.putBack(queue.preload(body));
      say(`${item.serial}: back from the skipped units`);
    },
  };

  // --- drawing -------------------------------------------------------------------------------
  // Pointer events (mouse, pen, finger). A press on one of the inspector's regions selects it and
  // drags it, its handles resize it (lib/edit.js, the labeling page's mechanism); elsewhere, B's
  // drawing mode draws a new region, else the drag pans.
  const regionEditor = wireRegionEditing();
  let drawFrom = null; // the image point a drawing drag started at
  let editFrom = null; // the regions before a move or resize in progress
  window.addEventListener("pointerup", () => {
    if (!editFrom) return;
    if (JSON.stringify(editFrom) !== JSON.stringify(desk.drafts)) remember(editFrom);
    editFrom = null;
  });
  $("viewport").addEventListener("pointerdown", (event) => {
    if (!queue.current || (event.button !== 0 && event.button !== 1)) return;
    event.preventDefault();
    const before = regionsCopy();
    if (event.button === 0 && regionEditor.press(event)) {
      editFrom = before; // kept when the drag changes the region (pointerup)
      return;
    }
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
      remember();
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
    if (!unit || unit.blind || !unit.model || !unit.model.regions.length) return;
    remember();
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
    if (!queue.current || index >= classes.length) return;
    desk.classIndex = index;
    if (desk.drafts.some((region) => !region.label)) remember();
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

  function toggleDrawing() {
    if (!queue.current) return;
    desk.drawing = !desk.drawing;
    $("btn-draw").classList.toggle("on", desk.drawing);
  }

  function deleteRegion() {
    if (!desk.drafts.length) return;
    remember();
    const selected = desk.drafts.indexOf(regionEditor.selected);
    desk.drafts.splice(selected >= 0 ? selected : desk.drafts.length - 1, 1);
    regionEditor.selected = null;
    renderDrafts();
    drawOverlay();
  }

  // --- keys and buttons ----------------------------------------------------------------------
  const PANS = { arrowleft: [PAN_STEP, 0], arrowright: [-PAN_STEP, 0], arrowup: [0, PAN_STEP], arrowdown: [0, -PAN_STEP] };
  const actions = {
    pass: () => decide("pass"),
    fail: () => decide("fail"),
    skip,
    skipped: () => skipped.toggle(),
    undo,
    redo,
    chooseClass: (key) => chooseClass(Number(key) - 1),
    findClass: () => $("class-find")?.focus(), // the finder shows past nine classes
    box: toggleDrawing,
    takeModel: takeModelRegions,
    delete: deleteRegion,
    escape: () => (skipped.open ? skipped.toggle(false) : cancelAsking()),
    toggleModel: () => {
      desk.showModel = !desk.showModel;
      drawOverlay();
    },
    zoomIn: () => view.zoomBy(1.25),
    zoomOut: () => view.zoomBy(0.8),
    fit: () => view.fit(),
    pan: (key) => view.panBy(...PANS[key]),
  };
  bindKeys("station", { handlers: actions, mode: () => "station" });
  renderHelp($("keys-help"), "station", { undoSeconds: UNDO_SECONDS });
  labelButtons(root);
  document.querySelectorAll(".actions button[data-action], #btn-skipped").forEach((button) => {
    button.addEventListener("click", () => {
      button.blur(); // the page's keys, not the last button clicked, take the next key press
      actions[button.dataset.action]();
    });
  });
  document.querySelectorAll("#classes li").forEach((item, index) => {
    item.addEventListener("click", () => chooseClass(index));
  });
  skipped.load();
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
        if (event.type === "unit.decided") skipped.forget(event.unit.id);
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
