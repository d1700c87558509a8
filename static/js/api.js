// The pages' one way to call Loupe's JSON API (station, labeling, dashboard): the session cookie,
// Django's CSRF token, JSON both ways. A failed call throws an ApiError holding the status and
// the server's reason in words ("409: someone else holds this task"); status 0 when the server
// could not be reached.
(function () {
  "use strict";

  class ApiError extends Error {
    constructor(status, detail) {
      super(`${status}: ${detail}`);
      this.status = status;
      this.detail = detail;
    }
  }

  function csrfToken() {
    const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // DRF answers {"detail": "..."} or {"field": ["problem"], "shapes": [{"mask": ["..."]}]}.
  function describeError(data) {
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

  async function api(method, url, body) {
    let response;
    try {
      response = await fetch(url, {
        method,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiError(0, `the server could not be reached (${error.message})`);
    }
    if (response.status === 204) return null;
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new ApiError(response.status, describeError(data) || response.statusText);
    }
    return data;
  }

  window.loupe = Object.freeze({ api, ApiError, csrfToken });
})();
