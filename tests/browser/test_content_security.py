"""The pages run under their Content-Security-Policy in Chromium without a single violation: no
inline script or style, nothing from elsewhere, and the live WebSocket (same origin) still opens."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from inspection.models import Unit
from inspection.services.decisions import decision_record
from tests.browser.conftest import sign_in
from tests.inspection.factories import person, posted_unit

pytestmark = pytest.mark.django_db(transaction=True)

# Each `securitypolicyviolation` the page's document sees, kept where the test can read it; an
# init script runs before the page's own and is not subject to its policy.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  const where = `${event.sourceFile}:${event.lineNumber}`;
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI} ${where}`);
});
"""


def visit(page, url: str) -> list[str]:
    """Open `url`, let its scripts run, and return the violations seen and the console's complaints."""
    complaints: list[str] = []
    page.on(
        "console",
        lambda message: "Content Security Policy" in message.text and complaints.append(message.text),
    )
    response = page.goto(url)
    assert response.status == 200, url
    assert "default-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)
    return page.evaluate("window.__violations") + complaints


def test_the_pages_load_with_no_policy_violation_and_the_websocket_opens(
    asgi_server, browser, make_station, device_client
):
    station = make_station(slug="line-csp", level="assisted")
    line = device_client(station)
    decided = posted_unit(line, "CSP-1")
    posted_unit(line, "CSP-2", seed=1)
    person("ines", role="inspector")
    decision_record(
        unit=Unit.objects.get(pk=decided["id"]),
        verdict="fail",
        defect_classes=["crack"],
        user=User.objects.get(username="ines"),
    )
    person("lea", role="labeler")
    sam = person("sam", role="supervisor")
    User.objects.filter(pk=sam.pk).update(is_staff=True, is_superuser=True)
    pages = {
        "ines": ["/stations/", f"/stations/{station.slug}/", "/units/", f"/units/{decided['id']}/"],
        "lea": [f"/labeling/{station.slug}/", f"/labeling/{station.slug}/review/"],
        "sam": [
            "/dashboard/",
            f"/dashboard/{station.slug}/",
            "/system/",
            f"/admin/inspection/station/{station.pk}/change/",
            f"/admin/inspection/unit/{decided['id']}/change/",
            "/admin/auth/user/",
        ],
    }
    violations: dict[str, list[str]] = {}
    sockets: list[str] = []

    context = browser.new_context()
    context.add_init_script(RECORD_VIOLATIONS)
    login = context.new_page()
    violations["/accounts/login/"] = visit(login, f"{asgi_server.url}/accounts/login/")
    login.close()
    for username, paths in pages.items():
        page = sign_in(context, asgi_server, username)
        page.on("websocket", lambda socket: sockets.append(socket.url))
        for path in paths:
            violations[path] = visit(page, f"{asgi_server.url}{path}")
        page.close()
        context.clear_cookies()
    context.close()

    assert {path: seen for path, seen in violations.items() if seen} == {}
    websockets = asgi_server.url.replace("http://", "ws://")
    assert {f"{websockets}/ws/stations/{station.slug}/events/", f"{websockets}/ws/dashboard/"} <= set(sockets)
