// The pages' one way to call Loupe's JSON API (station, labeling, dashboard, admin panels): the
// session cookie, Django's CSRF token, JSON both ways. A failed call throws an ApiError holding
// the status, the server's reason in words ("409: someone else holds this task") and its parsed
// answer (`data`); status 0 when the server could not be reached. A call aborted through
// `signal` throws the browser's AbortError as it is.

export class ApiError extends Error {
  constructor(status, detail, data) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
    this.data = data === undefined ? {} : data;
  }
}

export function csrfToken() {
  const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

// DRF answers {"detail": "..."} or {"field": ["problem"], "shapes": [{"mask": ["..."]}]}.
export function describeError(data) {
  if (typeof data === "string") return data;
  if (Array.isArray(data)) return data.map(describeError).filter(Boolean).join("; ");
  if (data && typeof data === "object") {
    if (data.detail) return describeError(data.detail);
    return Object.entries(data)
      .map(([field, problem]) => {
        const text = describeError(problem);
        return text ? `${field}: ${text}` : "";
      })
      .filter(Boolean)
      .join("; ");
  }
  return "";
}

export async function api(method, url, body, { signal } = {}) {
  let response;
  try {
    response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, `the server could not be reached (${error.message})`);
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new ApiError(response.status, describeError(data) || response.statusText, data);
  }
  return data;
}

// A POST that outlives the page (`pagehide`): no answer is read, failures are ignored.
export function postOnLeave(url) {
  fetch(url, {
    method: "POST",
    keepalive: true,
    credentials: "same-origin",
    headers: { "X-CSRFToken": csrfToken() },
  }).catch(() => {});
}
