"""The API reference works on a closed factory network: in Chromium, every request the page
makes goes to this server (or is stopped by its policy before it leaves), ReDoc's own bundle
comes from static/, and the reference renders the line's endpoints, the dashboard's answers and
the live events a client developer reads one after another."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

BUNDLE = "/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
STATION_EVENTS = [
    "unit.received",
    "unit.decided",
    "alarm.raised",
    "alarm.changed",
    "station.changed",
    "training.progress",
    "training.status",
]


@dataclass
class Traffic:
    """What the page asked for: every request, the answers, and what the browser stopped."""

    server: str
    requested: list[str] = field(default_factory=list)
    answered: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    aborted: list[str] = field(default_factory=list)

    def local(self, url: str) -> bool:
        # inline images, and ReDoc's web worker made from a blob of this page
        return url.startswith(("data:", f"blob:http://{self.server}/")) or urlsplit(url).netloc == self.server

    def outside(self) -> list[str]:
        """Requests to another host that were not stopped by the page's policy in the browser."""
        return [url for url in self.requested if not self.local(url) and self.failed.get(url) != "csp"]


def watched(context, server_url: str) -> Traffic:
    """Record the context's traffic; a request to another host that gets as far as the network
    is aborted (and counted), so the test never waits on, or reaches, the internet."""
    traffic = Traffic(server=urlsplit(server_url).netloc)
    context.on("request", lambda request: traffic.requested.append(request.url))
    context.on("response", lambda response: traffic.answered.__setitem__(response.url, response.status))
    context.on("requestfailed", lambda request: traffic.failed.__setitem__(request.url, request.failure))

    def route(route) -> None:
        if traffic.local(route.request.url):
            route.continue_()
        else:
            traffic.aborted.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    return traffic


def opened(context, asgi_server):
    page = context.new_page()
    page.goto(f"{asgi_server.url}/api/v1/docs/")
    page.locator("h2", has_text="Submit a unit's image").first.wait_for()
    page.wait_for_load_state("networkidle")
    return page


def test_the_api_reference_loads_nothing_from_outside(asgi_server, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    traffic = watched(context, asgi_server.url)

    opened(context, asgi_server)

    # ReDoc's bundle asks for its maker's logo on a CDN; the page's Content-Security-Policy stops
    # it in the browser, so nothing leaves the machine (and nothing waits on a closed network)
    assert traffic.outside() == [] and traffic.aborted == []
    assert traffic.answered[f"{asgi_server.url}{BUNDLE}"] == 200
    assert traffic.answered[f"{asgi_server.url}/api/v1/schema/"] == 200
    context.close()


def test_a_client_developer_reads_the_live_events_and_the_dashboards_answers(asgi_server, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    traffic = watched(context, asgi_server.url)
    page = opened(context, asgi_server)

    # the station's feed, from the menu: how to connect, then each event's payload in turn
    page.locator('li[role=menuitem][aria-label="Live events (WebSocket)"]').click()
    page.locator('li[role=menuitem][aria-label="/ws/stations/{slug}/events/"]').click()
    page.wait_for_function("() => location.hash.endsWith('/wsstationsslugevents')")
    route = page.locator("h2", has_text="/ws/stations/{slug}/events/")
    about = " ".join(route.locator("xpath=following::p[position() <= 3]").all_inner_texts())
    assert "Authorization: Api-Key <key>" in about and "4404" in about
    for event_type in STATION_EVENTS:
        heading = page.locator("h3", has_text=event_type).first
        heading.scroll_into_view_if_needed()
        payload = heading.locator("xpath=following::table[1]")
        assert f'"{event_type}"' in payload.inner_text(), event_type  # its type, a constant
    unit_fields = page.locator("h3", has_text="unit.decided").locator("xpath=following::table[1]")
    assert "unit" in unit_fields.inner_text()

    # the dashboard's notice, then the dashboard's own answer, opened like a reader does
    page.locator('li[role=menuitem][aria-label="/ws/dashboard/"]').click()
    activity = page.locator("h3", has_text="station.activity").locator("xpath=following::table[1]")
    assert all(name in activity.inner_text() for name in ("station", "kinds", "alarms"))
    overview = page.locator('[data-section-id="operation/dashboard_retrieve"]')
    overview.scroll_into_view_if_needed()
    overview.get_by_role("button", name="200").first.click()
    answer = overview.locator("table").last
    answer.wait_for()
    assert all(name in answer.inner_text() for name in ("period", "overall", "stations", "series"))

    assert traffic.outside() == [] and traffic.aborted == []
    context.close()
