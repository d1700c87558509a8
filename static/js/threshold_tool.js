// The threshold tool of a station's admin page: as the supervisor edits the Automation fields
// (target escape rate, level, band, audit share), it asks the server what those settings would do
// with the saved champion and challenger (inspection.admin_views.station_thresholds), fills the
// table and draws each version's risk-coverage curve with uPlot, the target as a line and the
// operating point as a dot. Nothing is saved: the form's own Save does that.

import { ApiError, api } from "./lib/api.js";
import { el } from "./lib/dom.js";
import { fixed as fixedTo, percentFine as pct } from "./lib/format.js";

const panel = document.getElementById("threshold-tool");
if (panel) start(panel);

// uPlot is the vendored classic script (static/vendor/uplot), loaded before this module.
function start(panel) {
  const FIELDS = ["target_escape_rate", "automation_level", "uncertainty_band", "audit_share"];
  const ROLES = ["champion", "challenger"];
  const COLORS = { champion: "#417690", challenger: "#d98b00", target: "#ba2121" };
  const DEBOUNCE_MS = 200;
  const stateText = panel.querySelector("[data-state]");
  const errorNote = panel.querySelector("[data-error]");
  const riskNote = panel.querySelector("[data-escape-risk]");
  const chartBox = panel.querySelector("[data-chart]");
  const caption = panel.querySelector("[data-chart-caption]");
  const CAPTION = caption.textContent;
  let chart = null;
  let pending = null; // the AbortController of the request in flight
  let timer = null;
  let updates = 0;

  function field(name) {
    return document.getElementById(`id_${name}`);
  }

  function tick(value) {
    return `${parseFloat((value * 100).toFixed(3))} %`;
  }

  const fixed = (value) => fixedTo(value, 4);

  function cell(figure, role) {
    return panel.querySelector(`td[data-figure="${figure}"][data-role="${role}"]`);
  }

  const span = (text, className) => el("span", text, className);

  function rolloutNote(model) {
    if (model.role !== "challenger") return "";
    if (model.rollout_mode === "canary") return "Canary: it decides its share of units with these figures.";
    return "In shadow: it predicts but decides nothing until it is a canary or the champion.";
  }

  function renderModel(role, model, target) {
    const put = (figure, text) => {
      cell(figure, role).replaceChildren(text);
    };
    if (!model) {
      put("model_version", role === "challenger" ? "no challenger" : "no champion");
      for (const figure of ["error_bound", "certified_threshold", "applied_threshold", "automation_rate", "observed_error", "validation_units", "note"]) {
        put(figure, figure === "note" ? "" : "–");
      }
      return;
    }
    put("model_version", model.model_version || "none");
    put("error_bound", model.error_bound === null || model.error_bound === undefined ? "none certified" : `${pct(model.error_bound)}`);
    put("certified_threshold", fixed(model.certified_threshold));
    put("applied_threshold", fixed(model.applied_threshold));
    put("automation_rate", model.automation_rate === undefined ? "–" : pct(model.automation_rate));
    const error = cell("observed_error", role);
    if (model.observed_error === null || model.observed_error === undefined) {
      error.replaceChildren("–");
    } else {
      error.replaceChildren(
        span(pct(model.observed_error), model.observed_error > target ? "threshold-tool-over" : ""),
        ` (${model.decided_errors} of ${model.decided_units})`,
      );
    }
    put("validation_units", model.validation_units === undefined ? "–" : String(model.validation_units));
    const note = cell("note", role);
    note.replaceChildren();
    if (model.reason) note.appendChild(span(model.reason.charAt(0).toUpperCase() + model.reason.slice(1) + ".", "threshold-tool-reason"));
    if (model.warning) {
      if (note.childNodes.length) note.appendChild(document.createElement("br"));
      note.appendChild(span(model.warning.charAt(0).toUpperCase() + model.warning.slice(1) + ".", "threshold-tool-warning"));
    }
    const rollout = rolloutNote(model);
    if (rollout) {
      if (note.childNodes.length) note.appendChild(document.createElement("br"));
      note.appendChild(span(rollout));
    }
  }

  function yTop(models, target) {
    // Scaled to the target, where the choice is made: a curve far above it runs off the top.
    let top = target * 4;
    for (const model of models) if (model.operating_point) top = Math.max(top, model.operating_point[1] * 1.2);
    return Math.min(1, top);
  }

  function offChart(models, top) {
    // Versions whose curve stays above the chart once a tenth of the units is decided alone.
    return models.filter((model) => {
      const errors = model.curve.filter(([coverage]) => coverage >= 0.1).map(([, error]) => error);
      return errors.length && Math.min(...errors) > top;
    });
  }

  function drawChart(models, target) {
    if (chart) {
      chart.destroy();
      chart = null;
    }
    const drawn = models.filter((model) => model && model.curve && model.curve.length);
    chartBox.replaceChildren();
    caption.textContent = CAPTION;
    if (!drawn.length || typeof uPlot === "undefined") {
      chartBox.textContent = drawn.length ? "The chart library did not load." : "No validation units to draw.";
      return;
    }
    const tables = drawn.map((model) => [model.curve.map((p) => p[0]), model.curve.map((p) => p[1])]);
    tables.push([[0, 1], [target, target]]);
    const data = uPlot.join(tables);
    const series = [
      { label: "decided alone", value: (u, v) => pct(v) },
      ...drawn.map((model) => ({
        label: `${model.role} ${model.model_version}`,
        stroke: COLORS[model.role],
        width: 2,
        dash: model.role === "challenger" ? [6, 4] : undefined,
        spanGaps: true,
        points: { show: false },
        value: (u, v) => pct(v),
      })),
      { label: `target ${pct(target)}`, stroke: COLORS.target, width: 1.5, spanGaps: true, points: { show: false }, value: () => pct(target) },
    ];
    const top = yTop(drawn, target);
    const above = offChart(drawn, top);
    caption.textContent = CAPTION + above.map((model) => ` The ${model.role} (${model.model_version}) errs on more than ${pct(top)} of the units it would decide: its curve runs above the chart.`).join("");
    const markOperatingPoints = (u) => {
      const context = u.ctx;
      const ratio = window.devicePixelRatio || 1;
      for (const model of drawn) {
        if (!model.operating_point) continue;
        const [coverage, error] = model.operating_point;
        const x = u.valToPos(coverage, "x", true);
        const y = u.valToPos(Math.min(error, top), "y", true);
        context.save();
        context.beginPath();
        context.arc(x, y, 6 * ratio, 0, 2 * Math.PI);
        context.fillStyle = COLORS[model.role];
        context.strokeStyle = "#fff";
        context.lineWidth = 2 * ratio;
        context.fill();
        context.stroke();
        context.restore();
      }
    };
    chart = new uPlot(
      {
        width: Math.max(320, chartBox.clientWidth || 480),
        height: 260,
        scales: { x: { time: false, range: [0, 1] }, y: { range: [0, top] } },
        axes: [
          { label: "share decided alone", values: (u, splits) => splits.map(tick) },
          { label: "error among them", values: (u, splits) => splits.map(tick), size: 60 },
        ],
        series,
        hooks: { draw: [markOperatingPoints] },
      },
      data,
      chartBox,
    );
  }

  function render(result) {
    const target = result.settings.target_escape_rate;
    const byRole = Object.fromEntries(result.models.map((model) => [model.role, model]));
    for (const role of ROLES) renderModel(role, byRole[role], target);
    drawChart(result.models, target);
    errorNote.hidden = true;
    // What saving asks to confirm: the same rule the server applies (station_escape_risk).
    riskNote.hidden = !result.escape_risk;
    riskNote.textContent = result.escape_risk
      ? `Saving asks you to confirm: ${result.escape_risk}. Tick "Accept an error above the target" and give a reason.`
      : "";
    stateText.textContent = "for the settings beside, not saved yet";
    updates += 1;
    panel.dataset.updates = String(updates);
  }

  function showErrors(errors) {
    errorNote.replaceChildren();
    for (const [name, message] of Object.entries(errors)) {
      const label = document.querySelector(`label[for="id_${name}"]`);
      const line = document.createElement("div");
      line.textContent = `${label ? label.textContent.replace(/:$/, "") : name}: ${message}`;
      errorNote.appendChild(line);
    }
    errorNote.hidden = false;
    stateText.textContent = "fix the settings to measure them";
  }

  async function measure() {
    const query = new URLSearchParams();
    for (const name of FIELDS) {
      const input = field(name);
      if (input) query.set(name, input.value.trim());
    }
    if (pending) pending.abort();
    const controller = new AbortController();
    pending = controller;
    panel.classList.add("threshold-tool-busy");
    stateText.textContent = "measuring…";
    try {
      render(await api("GET", `${panel.dataset.url}?${query}`, undefined, { signal: controller.signal }));
    } catch (error) {
      if (error.name === "AbortError") return;
      if (!(error instanceof ApiError)) throw error;
      if (error.status === 400 && error.data.errors) showErrors(error.data.errors);
      else if (error.status) showErrors({ tool: error.data.error || `the server answered ${error.status}` });
      else showErrors({ tool: `could not reach the server (${error.detail})` });
    } finally {
      if (pending === controller) {
        pending = null;
        panel.classList.remove("threshold-tool-busy");
      }
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(measure, DEBOUNCE_MS);
  }

  for (const name of FIELDS) {
    const input = field(name);
    if (!input) continue;
    input.addEventListener("input", schedule);
    input.addEventListener("change", schedule);
  }
  measure();
}
