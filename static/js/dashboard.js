// The supervision dashboard: figures and charts from the JSON endpoint, kept live by the
// dashboard's WebSocket. Every `station.activity` notice refetches the figures (at most once
// every REFRESH_MIN_MS for the period shown: a week's figures read every unit of the week, and
// move little in a few seconds); alarms in a notice are shown at once. Charts are uPlot
// (static/vendor, a classic script before this module: the global `uPlot`).

import { api } from "./lib/api.js";
import { $, el } from "./lib/dom.js";
import { age, milliseconds, number, percent, percentNumber, say, withInterval } from "./lib/format.js";
import { live, showOnBadge } from "./lib/live.js";

const root = $("dashboard");
if (root) start(root);

function start(root) {
  const REFRESH_MIN_MS = { hour: 2000, day: 15000, week: 60000 };
  const REFRESH_IDLE_MS = 10000;
  const scope = root.dataset.scope; // "overview" | "station"
  const slug = root.dataset.station || null;
  const canChangeAlarms = root.dataset.canChangeAlarms === "1";
  const BUCKET_NAMES = { 60: "minute", 900: "quarter-hour", 3600: "hour" };
  const COLORS = ["#2f5bd3", "#1a7f4b", "#d9822b", "#8e44ad", "#16a2b8", "#b3261e", "#6b7385"];

  const state = {
    period: new URLSearchParams(location.search).get("period") || "hour",
    data: null,
    alarms: new Map(), // id -> alarm
    charts: {},
    chartsPeriod: null,
    xRange: [0, 1],
    lastFetch: 0,
    refreshTimer: null,
    fetching: false,
    again: false,
  };
  window.loupeDashboard = { fetches: 0 }; // read by the browser test

  // --- talking to the server -----------------------------------------------------------------
  async function refresh() {
    if (state.fetching) {
      state.again = true;
      return;
    }
    state.fetching = true;
    state.lastFetch = Date.now();
    try {
      const url = `${root.dataset.apiUrl}?period=${encodeURIComponent(state.period)}`;
      const data = await api("GET", url);
      window.loupeDashboard.fetches += 1;
      state.data = data;
      render(data);
      $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
      say("");
    } catch (error) {
      say(`figures unavailable: ${error.message}`, true);
    } finally {
      state.fetching = false;
      if (state.again) {
        state.again = false;
        scheduleRefresh();
      }
    }
  }
  // At most one fetch every REFRESH_MIN_MS of the period, however busy the line.
  function scheduleRefresh() {
    if (state.refreshTimer) return;
    const least = REFRESH_MIN_MS[state.period] || REFRESH_MIN_MS.hour;
    const wait = Math.max(0, state.lastFetch + least - Date.now());
    state.refreshTimer = setTimeout(() => {
      state.refreshTimer = null;
      refresh();
    }, wait);
  }

  // --- tiles and tables ----------------------------------------------------------------------
  function tiles(figures) {
    const escape = figures.escape;
    const latency = figures.latency;
    const decisions = figures.decisions;
    return [
      ["automation", "Automation rate", percent(figures.automation.rate),
        `${number(figures.automation.count)} of ${number(figures.units_received)} units decided by a model`],
      ["deferral", "Deferral rate", percent(figures.deferral.rate),
        `${number(figures.deferral.count)} deferred to a person`],
      ["agreement", "Agreement, blind units", percent(figures.agreement.rate),
        withInterval(figures.agreement, "judged")
          ? `${withInterval(figures.agreement, "judged")} · shadow and audits`
          : "no blind unit judged yet"],
      ["escape", "Estimated escape rate", escape.audits ? percent(escape.wrong.rate) : "no audits yet",
        escape.audits
          ? `${withInterval(escape.wrong, "audits")} · missed defects ${withInterval(escape.missed, "audits")}`
          : "a full-automation station's audit share measures it"],
      ["decisions", "Decisions per hour", number(decisions.per_hour.total, 1),
        `model ${number(decisions.per_hour.model, 1)}/h, people ${number(decisions.per_hour.human, 1)}/h`],
      ["latency", "API latency p50 / p99", `${milliseconds(latency.p50_ms)} / ${milliseconds(latency.p99_ms)}`,
        `${number(latency.count)} units posted`],
      ["queue", "Waiting for a person", number(figures.queue.pending),
        `oldest ${age(figures.queue.oldest_pending_seconds)}`],
    ];
  }
  // The units page's search behind each tile: the station's units of the same period.
  const TILE_UNITS = {
    automation: "decided_by=model",
    deferral: "reason=deferred",
    agreement: "disagreement=yes",
    escape: "reason=audit",
    decisions: "",
    queue: "verdict=pending",
    "live-escape": "reason=audit",
  };
  function unitsUrl(search) {
    const query = new URLSearchParams(search);
    if (slug) query.set("station", slug);
    if (!query.has("verdict") || query.get("verdict") !== "pending") query.set("within", state.period);
    return `/units/?${query}`;
  }
  // Partial automation's live escape rate against its target, in the server's words, over the
  // threshold's own window (not the period shown).
  function liveEscapeValue(live) {
    if (live.state === "none") return "no audits yet";
    if (live.state === "too_few") return "too few to tell";
    return percent(live.wrong.rate);
  }
  function liveEscapeWindow(live) {
    const audits = `audits of ${live.model_version}'s decisions at partial automation`;
    return live.since
      ? `${audits} since ${new Date(live.since).toLocaleString()}, when ${live.since_reason}`
      : `all ${audits}`;
  }
  function renderTiles(figures, live) {
    const container = $("tiles");
    container.replaceChildren();
    const all = tiles(figures);
    if (live) {
      all.push(["live-escape", `Live escape rate vs ${percent(live.target)} target`, liveEscapeValue(live),
        `${live.text} · ${liveEscapeWindow(live)}`, live.state]);
    }
    for (const [name, label, value, detail, state] of all) {
      const tile = el("div", null, "tile");
      tile.dataset.figure = name;
      if (state) tile.dataset.state = state;
      tile.append(el("span", label, "label"), el("strong", value, "value"), el("span", detail, "detail"));
      if (name in TILE_UNITS) {
        const link = el("a", "the units", "units-link");
        link.href = unitsUrl(TILE_UNITS[name]);
        tile.append(link);
      }
      container.append(tile);
    }
  }
  function roleText(model) {
    if (model.role === "challenger") {
      return model.rollout === "canary"
        ? `challenger, canary ${percentNumber(model.canary_share)} %`
        : "challenger, shadow";
    }
    return model.role === "earlier" ? "earlier version" : model.role;
  }
  function renderModels(models) {
    const body = $("models").querySelector("tbody");
    body.replaceChildren();
    if (!models.length) {
      const row = document.createElement("tr");
      const cell = el("td", "No model version at this station.", "muted");
      cell.colSpan = 5;
      row.append(cell);
      body.append(row);
    }
    for (const model of models) {
      const row = document.createElement("tr");
      row.dataset.model = model.model_version;
      row.append(
        el("td", model.model_version),
        el("td", roleText(model), `role ${model.role}`),
        el("td", number(model.predicted)),
        el("td", number(model.decided)),
        el("td", percent(model.decided_share))
      );
      body.append(row);
    }
  }
  function liveEscapeCell(live) {
    const cell = el("td", live ? live.text : "–", live && live.state === "above" ? "bad" : "");
    cell.dataset.figure = "live-escape";
    if (live) cell.title = liveEscapeWindow(live);
    return cell;
  }
  function renderStations(stations) {
    const body = $("stations").querySelector("tbody");
    body.replaceChildren();
    for (const station of stations) {
      const f = station.figures;
      const row = document.createElement("tr");
      row.dataset.station = station.slug;
      const name = document.createElement("td");
      const link = el("a", station.name);
      link.href = `${station.dashboard_url}?period=${state.period}`;
      name.append(link, el("span", ` ${station.slug}`, "muted"));
      const alarms = station.alarms.open + station.alarms.acknowledged;
      row.append(
        name,
        el("td", station.automation_level_display),
        el("td", number(f.units_received)),
        el("td", percent(f.automation.rate)),
        el("td", percent(f.deferral.rate)),
        el("td", withInterval(f.agreement, "judged") || "–"),
        el("td", f.escape.audits ? withInterval(f.escape.wrong, "audits") : "no audits yet"),
        liveEscapeCell(station.live_escape),
        el("td", number(f.decisions.per_hour.total, 1)),
        el("td", `${milliseconds(f.latency.p50_ms)} / ${milliseconds(f.latency.p99_ms)}`),
        el("td", `${number(f.queue.pending)} (oldest ${age(f.queue.oldest_pending_seconds)})`),
        el("td", station.models.filter((m) => m.role !== "earlier").map((m) => `${m.model_version} ${roleText(m)}`).join("; ") || "–"),
        el("td", alarms ? `${station.alarms.open} open, ${station.alarms.acknowledged} acknowledged` : "–", station.alarms.open ? "bad" : "")
      );
      body.append(row);
    }
  }

  // --- alarms --------------------------------------------------------------------------------
  function alarmUrl(template, id) {
    return template.replace("/0/", `/${id}/`);
  }
  function upsertAlarms(alarms) {
    for (const alarm of alarms) {
      if (slug && alarm.station !== slug) continue;
      if (alarm.status === "cleared") state.alarms.delete(alarm.id);
      else state.alarms.set(alarm.id, alarm);
    }
    renderAlarms();
  }
  async function alarmAction(alarm, action, body) {
    const template = action === "acknowledge" ? root.dataset.acknowledgeUrl : root.dataset.clearUrl;
    try {
      const changed = await api("POST", alarmUrl(template, alarm.id), body);
      if (document.activeElement) document.activeElement.blur(); // let the list redraw
      upsertAlarms([changed]);
      say(`alarm ${alarm.id} ${changed.status}`);
    } catch (error) {
      say(`alarm ${alarm.id}: ${error.message}`, true);
    }
  }
  function alarmItem(alarm) {
    const item = el("li", null, `alarm ${alarm.status}`);
    item.dataset.alarm = alarm.id;
    const head = el("div", null, "alarm-head");
    head.append(el("span", alarm.status, "badge status"), el("strong", alarm.kind_display));
    if (!slug) head.append(el("span", ` at ${alarm.station}`));
    const seen = `raised ${new Date(alarm.raised_at).toLocaleString()}, seen ${alarm.times_seen}×, last ${new Date(alarm.last_seen_at).toLocaleTimeString()}`;
    const units = el("a", "the units of its window", "units-link");
    units.href = `/units/?alarm=${alarm.id}`;
    item.append(head, el("div", alarm.summary, "summary"), el("div", seen, "muted"), units);
    if (alarm.actions.length) item.append(el("div", `done: ${alarm.actions.join("; ")}`, "actions-done"));
    if (alarm.acknowledged_by) item.append(el("div", `acknowledged by ${alarm.acknowledged_by}`, "muted"));
    if (canChangeAlarms) {
      const form = el("form", null, "alarm-form");
      if (alarm.status === "open") {
        const acknowledge = el("button", "Acknowledge", "acknowledge");
        acknowledge.type = "button";
        acknowledge.addEventListener("click", () => alarmAction(alarm, "acknowledge"));
        form.append(acknowledge);
      }
      const note = document.createElement("input");
      note.type = "text";
      note.name = "note";
      note.maxLength = 500;
      note.placeholder = "note: what was done about it";
      const clear = el("button", "Clear", "clear");
      clear.type = "submit";
      form.append(note, clear);
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        alarmAction(alarm, "clear", { note: note.value });
      });
      item.append(form);
    }
    return item;
  }
  function renderAlarms() {
    const alarms = [...state.alarms.values()].sort(
      (a, b) => (a.status !== "open") - (b.status !== "open") || b.raised_at.localeCompare(a.raised_at)
    );
    const list = $("alarms");
    // Keep the items while someone types a note in one; the next update redraws them.
    const typing = document.activeElement && document.activeElement.tagName === "INPUT";
    if (typing && list.contains(document.activeElement)) return;
    list.replaceChildren(...alarms.map(alarmItem));
    const open = alarms.filter((a) => a.status === "open").length;
    $("alarm-count").textContent = alarms.length ? `${open} open, ${alarms.length - open} acknowledged` : "";
    $("alarm-count").className = "badge" + (open ? " bad" : "");
    $("alarm-count").hidden = alarms.length === 0;
    $("no-alarms").hidden = alarms.length > 0;
  }

  // --- charts --------------------------------------------------------------------------------
  function chartWidth(element) {
    return Math.max(280, element.clientWidth || element.parentElement.clientWidth || 480);
  }
  function chart(name, series, data, options) {
    const element = $(`chart-${name}`);
    const existing = state.charts[name];
    if (existing && existing.series.length === series.length + 1) {
      existing.setData(data);
      return;
    }
    if (existing) existing.destroy();
    const opts = {
      width: chartWidth(element),
      height: 190,
      legend: { live: true },
      // Every chart spans the whole period, however few its points.
      scales: { x: { time: true, range: () => state.xRange }, ...(options && options.scales) },
      axes: [{}, { size: 56, ...(options && options.yAxis) }],
      series: [{}, ...series.map((s, index) => ({ stroke: COLORS[index % COLORS.length], width: 2, spanGaps: false, ...s }))],
    };
    state.charts[name] = new uPlot(opts, data, element);
  }
  function renderCharts(data) {
    const s = data.series;
    const t = s.t;
    state.xRange = [t[0], t[t.length - 1] + data.bucket_seconds];
    const periodChanged = state.chartsPeriod !== data.period;
    if (periodChanged) {
      for (const existing of Object.values(state.charts)) existing.destroy();
      state.charts = {};
      state.chartsPeriod = data.period;
    }
    document.querySelectorAll(".period-name").forEach((e) => (e.textContent = data.period));
    document.querySelectorAll(".bucket-name").forEach((e) => (e.textContent = BUCKET_NAMES[data.bucket_seconds] || `${data.bucket_seconds} s`));
    const toPercent = (values) => values.map((v) => (v === null ? null : v * 100));
    chart("throughput", [{ label: "received" }, { label: "decided by a model" }, { label: "decided by people" }],
      [t, s.received, s.decided_by_model, s.decided_by_human]);
    chart("rates", [{ label: "automation %", spanGaps: true }, { label: "agreement %", spanGaps: true, points: { show: true } }],
      [t, toPercent(s.automation_rate), toPercent(s.agreement)], { scales: { y: { range: [0, 100] } } });
    const width = data.bucket_seconds;
    chart("queue", [{ label: "waiting" }], [t.map((x) => x + width), s.queue_length]);
    chart("latency", [{ label: "p50 ms", spanGaps: true }, { label: "p99 ms", spanGaps: true }],
      [t, s.latency_p50_ms, s.latency_p99_ms]);
    renderDrift(s.drift);
  }
  function renderDrift(drift) {
    const empty = drift.t.length === 0;
    $("no-drift").hidden = !empty;
    $("chart-drift").hidden = empty;
    if (empty) {
      if (state.charts.drift) state.charts.drift.destroy();
      delete state.charts.drift;
      return;
    }
    const floor = 1e-12;
    const stations = [...new Set(drift.station)];
    const p = drift.min_adjusted_p.map((v) => (v === null ? null : Math.max(v, floor)));
    const series = stations.map((name) => ({ label: `${name} p`, spanGaps: true, points: { show: true, size: 6 } }));
    const values = stations.map((name) => p.map((v, i) => (drift.station[i] === name ? v : null)));
    series.push({ label: "shift found", stroke: "#b3261e", width: 0, paths: () => null, points: { show: true, size: 10, fill: "#b3261e" } });
    values.push(p.map((v, i) => (drift.shifted[i] ? v : null)));
    series.push({ label: "significance", stroke: "#6b7385", dash: [4, 4], spanGaps: true, points: { show: false } });
    values.push(drift.significance);
    if (state.charts.drift && state.charts.drift.series.length !== series.length + 1) {
      state.charts.drift.destroy();
      delete state.charts.drift;
    }
    chart("drift", series, [drift.t, ...values], { scales: { y: { distr: 3 } } });
  }
  window.addEventListener("resize", () => {
    for (const [name, existing] of Object.entries(state.charts)) {
      existing.setSize({ width: chartWidth($(`chart-${name}`)), height: 190 });
    }
  });

  // --- the whole page ------------------------------------------------------------------------
  function render(data) {
    const figures = scope === "station" ? data.figures : data.overall;
    renderTiles(figures, scope === "station" ? data.live_escape : null);
    if (scope === "station") {
      renderModels(data.models);
      $("station-level").textContent = data.station.automation_level_display;
    } else {
      renderStations(data.stations);
    }
    state.alarms = new Map(data.alarms.map((alarm) => [alarm.id, alarm]));
    renderAlarms();
    renderCharts(data);
  }
  function choosePeriod(period) {
    state.period = period;
    document.querySelectorAll(".periods button").forEach((button) => {
      button.classList.toggle("on", button.dataset.period === period);
    });
    const url = new URL(location.href);
    url.searchParams.set("period", period);
    history.replaceState(null, "", url);
    refresh();
  }
  document.querySelectorAll(".periods button").forEach((button) => {
    button.addEventListener("click", () => choosePeriod(button.dataset.period));
  });

  const badge = showOnBadge($("live"));
  function listen() {
    live(root.dataset.eventsPath, {
      onOpen: scheduleRefresh, // whatever happened while the socket was down
      onMessage: (notice) => {
        if (notice.type !== "station.activity" || (slug && notice.station !== slug)) return;
        if (notice.alarms && notice.alarms.length) upsertAlarms(notice.alarms);
        scheduleRefresh();
      },
      onState: (state, words) => {
        badge(state, words);
        if (state === "stopped") say(`Live updates stopped: ${words}.`, true);
      },
    });
  }

  setInterval(() => {
    if (Date.now() - state.lastFetch >= REFRESH_IDLE_MS) scheduleRefresh();
  }, 5000);
  choosePeriod(state.period);
  listen();
}
