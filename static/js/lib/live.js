// The pages' one live connection: a WebSocket to one of Loupe's event feeds (a station's
// /ws/stations/<slug>/events/, the dashboard's /ws/dashboard/), reconnected when it drops.
//
// The server refuses a handshake by accepting it and closing at once with a code saying why
// (inspection/consumers.py). Those refusals do not get better by asking again, so they stop the
// loop and the page says what to do:
//   4401: not signed in (the session ended or was signed out): sign in again, then reload;
//   4403: this account may not follow this feed (or the page is on another site);
//   4404: the station no longer exists.
// Every other close (the server restarting, the network dropping: 1006) reconnects, after
// RETRY_FIRST_MS, doubling up to RETRY_MAX_MS; an open connection starts the count again.

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 10000;

export const REFUSALS = Object.freeze({
  4401: "signed out: sign in again, then reload this page",
  4403: "not allowed to follow these live updates",
  4404: "this station no longer exists",
});

// Connect to `path` and keep connected. `onOpen()` runs on each (re)connection (fetch what may
// have been missed), `onMessage(event)` with each parsed JSON message, and `onState(state, words,
// code)` on each change: "connecting" (the first attempt), "live", "reconnecting" (words: "offline,
// reconnecting") and "stopped" (words: the refusal's reason, above). Returns {close()}.
export function live(path, { onOpen, onMessage, onState } = {}) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}${path}`;
  let retry = RETRY_FIRST_MS;
  let socket = null;
  let timer = null;
  let stopped = false;
  const tell = (state, words, code) => onState && onState(state, words, code);

  function connect() {
    timer = null;
    socket = new WebSocket(url);
    socket.addEventListener("open", () => {
      retry = RETRY_FIRST_MS;
      tell("live", "live");
      if (onOpen) onOpen();
    });
    socket.addEventListener("message", (message) => {
      if (onMessage) onMessage(JSON.parse(message.data));
    });
    socket.addEventListener("close", (closed) => {
      socket = null;
      if (stopped) return;
      const refusal = REFUSALS[closed.code];
      if (refusal) {
        stopped = true;
        tell("stopped", refusal, closed.code);
        return;
      }
      tell("reconnecting", "offline, reconnecting");
      timer = setTimeout(connect, retry);
      retry = Math.min(retry * 2, RETRY_MAX_MS);
    });
  }

  tell("connecting", "connecting");
  connect();
  return {
    close() {
      stopped = true;
      clearTimeout(timer);
      if (socket) socket.close();
    },
  };
}

// onState for the pages' live badge (#live): "live" in green, otherwise the state in words, in
// red once the feed is down or refused.
export function showOnBadge(badge) {
  return (state, words) => {
    badge.textContent = words;
    badge.className = state === "live" ? "ok" : state === "connecting" ? "muted" : "bad";
  };
}
