"""The API reference works on a closed factory network: in Chromium, every request the page
makes goes to this server (or is stopped by its policy before it leaves), and the reference
renders the line's endpoints."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_api_reference_loads_nothing_from_outside(asgi_server, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    failed: dict[str, str] = {}
    page.on("requestfailed", lambda request: failed.__setitem__(request.url, request.failure))
    page.goto(f"{asgi_server.url}/api/v1/docs/")
    page.locator("h2", has_text="Submit a unit's image").first.wait_for()
    page.wait_for_load_state("networkidle")
    server = urlsplit(asgi_server.url).netloc
    local = ("data:", f"blob:{asgi_server.url}/")  # inline images, ReDoc's web worker
    outside = [url for url in requested if not url.startswith(local) and urlsplit(url).netloc != server]
    # ReDoc's bundle asks for its maker's logo on a CDN; the page's Content-Security-Policy stops
    # it in the browser, so nothing leaves the machine (and nothing waits on a closed network)
    assert [url for url in outside if failed.get(url) != "csp"] == []
    assert any(url.endswith("/api/v1/schema/") for url in requested)
    context.close()
