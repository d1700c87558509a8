// How the pages put things into words: ages, counts, shares, durations, and the one status line
// (#status) through which a page tells the person what happened.

const EMPTY = "–";
const missing = (value) => value === null || value === undefined;

// "42 s", "7 min", "1.5 h"; "–" when unknown.
export function age(seconds) {
  if (missing(seconds)) return EMPTY;
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

// "1,234" (up to `digits` decimals, none by default); "–" when unknown.
export function number(value, digits) {
  if (missing(value)) return EMPTY;
  return value.toLocaleString("en", { maximumFractionDigits: digits === undefined ? 0 : digits });
}

// A share as a percentage's digits, for figures read at a glance (the dashboard's tiles):
// one decimal, two below 1 % so that a small rate does not read as 0.
export function percentNumber(value) {
  const percent = value * 100;
  if (percent !== 0 && Math.abs(percent) < 1) return percent.toFixed(2);
  return percent.toFixed(1);
}

// "12.5 %", "0.43 %"; "–" when unknown.
export function percent(value) {
  return missing(value) ? EMPTY : `${percentNumber(value)} %`;
}

// A share compared against a target (the threshold tool's error rates, near 1 %): two decimals
// below 10 %, one from there on and at 0. "1.00 %", "66.3 %"; "–" when unknown.
export function percentFine(value) {
  if (missing(value)) return EMPTY;
  const share = value * 100;
  return `${share.toFixed(share === 0 || share >= 10 ? 1 : 2)} %`;
}

// "0.8 % (0.1–2.9 %, 120 audits)": a share {rate, low, high, total} with its interval; null
// when nothing was counted.
export function withInterval(share, noun) {
  if (!share || !share.total) return null;
  return `${percent(share.rate)} (${percentNumber(share.low)}–${percentNumber(share.high)} %, ${share.total} ${noun})`;
}

// "4.2 ms", "18 ms"; "–" when unknown.
export function milliseconds(value) {
  if (missing(value)) return EMPTY;
  return value < 10 ? `${value.toFixed(1)} ms` : `${Math.round(value)} ms`;
}

// A number with `digits` decimals, "–" when unknown (threshold values, losses).
export function fixed(value, digits) {
  return typeof value === "number" ? value.toFixed(digits) : EMPTY;
}

// The page's status line (#status): what just happened, or what went wrong (`bad`: shown as an
// error and announced at once by screen readers).
export function say(text, bad) {
  const status = document.getElementById("status");
  if (!status) return;
  status.textContent = text;
  status.className = "status" + (bad ? " bad" : "");
  status.setAttribute("role", bad ? "alert" : "status");
}
