// The Training panel of a station's admin page: keeps its job rows live from the station's
// WebSocket. `training.progress` (each epoch, and a few times a second between) and
// `training.status` (queued, running, shadow, rejected, failed...) events carry a `job` object
// with the fields the server-side template renders (workers.selectors.training_job_summary).

import { el as element } from "./lib/dom.js";
import { fixed } from "./lib/format.js";
import { live } from "./lib/live.js";

const panel = document.getElementById("training-panel");
if (panel) start(panel);

function start(panel) {
  const body = panel.querySelector("[data-training-jobs]");
  const liveState = panel.querySelector("[data-live-state]");
  const LIVE_WORDS = { connecting: "connecting…", live: "on", reconnecting: "reconnecting…" };
  const figure = (value) => fixed(value, 3);

  function progressText(job) {
    if (job.status === "queued") return "waiting for a worker";
    if (!job.epochs) return job.status === "running" ? "preparing" : "";
    let text = `epoch ${job.epoch}/${job.epochs}`;
    if (typeof job.loss === "number") text += `, loss ${job.loss.toFixed(3)}`;
    if (job.status === "running") {
      if (job.steps && job.step >= job.steps) text += ", evaluating against the champion";
      else if (typeof job.eta_seconds === "number") text += `, ETA ${Math.round(job.eta_seconds)} s`;
    }
    return text;
  }

  function rowFor(job) {
    let row = body.querySelector(`tr[data-job="${job.id}"]`);
    if (row) return row;
    const empty = body.querySelector("[data-training-empty]");
    if (empty) empty.remove();
    row = document.createElement("tr");
    row.dataset.job = String(job.id);
    for (const name of ["job", "status", "progress", "comparison", "gate"]) {
      row.appendChild(element("td", null, `training-${name}`));
    }
    const progress = row.querySelector(".training-progress");
    progress.appendChild(document.createElement("progress"));
    progress.appendChild(element("span", "", "training-progress-text"));
    body.insertBefore(row, body.firstChild);
    return row;
  }

  function render(job) {
    const row = rowFor(job);

    const jobCell = row.querySelector(".training-job");
    jobCell.replaceChildren(`#${job.id} on ${job.snapshot}`, document.createElement("br"));
    jobCell.appendChild(element("small", job.trigger + (job.requested_by ? ` (${job.requested_by})` : "")));

    const status = row.querySelector(".training-status");
    status.className = `training-status training-status-${job.status}`;
    status.replaceChildren(job.status_label);
    if (job.attempts > 1) {
      status.appendChild(document.createElement("br"));
      status.appendChild(element("small", `attempt ${job.attempts}`));
    }

    const bar = row.querySelector(".training-progress progress");
    bar.max = job.steps || 1;
    bar.value = job.step || 0;
    row.querySelector(".training-progress-text").textContent = progressText(job);

    const comparison = row.querySelector(".training-comparison");
    comparison.replaceChildren();
    if (job.comparison && job.comparison.length) {
      const table = document.createElement("table");
      const head = document.createElement("tr");
      head.append(element("th", ""), element("th", job.candidate), element("th", job.champion || "no champion"));
      table.appendChild(head);
      for (const line of job.comparison) {
        const tr = document.createElement("tr");
        tr.append(element("td", line.metric), element("td", figure(line.candidate)), element("td", figure(line.champion)));
        table.appendChild(tr);
      }
      const units = document.createElement("tr");
      const cell = element("td");
      cell.colSpan = 3;
      cell.appendChild(element("small", `${job.test_units} test units`));
      units.appendChild(cell);
      table.appendChild(units);
      comparison.appendChild(table);
    } else if (job.candidate) {
      comparison.textContent = job.candidate;
    }

    const gate = row.querySelector(".training-gate");
    gate.replaceChildren();
    if (job.reasons && job.reasons.length) {
      const list = document.createElement("ul");
      for (const reason of job.reasons) list.appendChild(element("li", reason));
      gate.appendChild(list);
    }
    if (job.error) gate.appendChild(element("pre", job.error));
  }

  live(panel.dataset.eventsPath, {
    onMessage: (event) => {
      if (event.job && typeof event.type === "string" && event.type.startsWith("training.")) render(event.job);
    },
    onState: (state, words) => {
      liveState.textContent = `live updates: ${state === "stopped" ? `off (${words})` : LIVE_WORDS[state]}`;
    },
  });
}
