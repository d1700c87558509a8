// The station's labeling figures in the page's bar (open tasks by reason, random slice, waiting
// for review, done), read every FIGURES_EVERY_MS and after each task sent. Work that arrives
// while the page has nothing on screen is taken.

import { api } from "../lib/api.js";
import { $ } from "../lib/dom.js";
import { say } from "../lib/format.js";
import { API, REVIEW, current, queue, slug } from "./state.js";

const FIGURES_EVERY_MS = 15000;
const SOON_MS = 100; // several calls in a row make one request
let timer = null;

export function refreshFigures() {
  clearTimeout(timer);
  timer = setTimeout(async () => {
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
      const waiting = REVIEW ? figures.in_review : figures.open;
      if (!current() && !queue.claimingNext && waiting > 0) queue.advance();
    } catch (error) {
      say(`Queue figures unavailable: ${error.detail}`, true);
    }
  }, SOON_MS);
}

export function refreshFiguresEvery() {
  setInterval(refreshFigures, FIGURES_EVERY_MS);
}
