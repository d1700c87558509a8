"""The first person's way in on a fresh installation, then the team signing in one after another
in the same browser: each lands where their role works and sees only what it may open."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model

from config.accounts import sign_in_hint
from tests.browser.conftest import sign_in
from tests.inspection.factories import person

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "first-run.png"


def _nav(page) -> list[str]:
    return page.locator("header nav a").all_text_contents()


def test_the_first_person_makes_an_account_then_the_team_signs_in_in_turn(asgi_server, browser, make_station):
    station = make_station(slug="line-a", level="assisted")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    # a visitor on a fresh installation is told where the first account comes from, and sees no data
    page.goto(f"{asgi_server.url}/")
    assert "No account exists yet" in page.text_content("main")
    assert station.slug not in page.content()
    # the link make run printed makes the first account
    link = re.search(r"(/accounts/first-run/[^/\s]+/)", sign_in_hint(asgi_server.url)).group(1)
    page.goto(f"{asgi_server.url}{link}")
    page.fill("#id_username", "sam")
    page.fill("#id_password", "short")
    page.fill("#id_password_again", "short")
    page.click("button[type=submit]")
    assert "too short" in page.text_content("main")
    assert not get_user_model().objects.exists()
    if os.environ.get("LOUPE_UPDATE_SCREENSHOTS") == "1":
        page.screenshot(path=str(SCREENSHOT))
    page.fill("#id_password", "a-long-passphrase")
    page.fill("#id_password_again", "a-long-passphrase")
    page.click("button[type=submit]")
    page.wait_for_url(f"{asgi_server.url}/dashboard/")
    assert _nav(page) == ["Stations", "Units", "Dashboard", "Labeling", "System", "API", "Admin"]
    # the link is spent
    assert page.goto(f"{asgi_server.url}{link}").status == 410
    page.click("text=Sign out")
    page.wait_for_url(f"{asgi_server.url}/accounts/login/")
    context.close()

    # the team, one after another in one browser
    person("ines", role="inspector")
    person("lea", role="labeler")
    get_user_model().objects.create_user("nobody", password="pw")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    for username, landing, nav in (
        ("ines", "/stations/", ["Stations", "Units", "API"]),
        ("lea", "/labeling/", ["Stations", "Units", "Labeling", "API"]),
        ("nobody", "/", ["API"]),
        ("sam", "/dashboard/", ["Stations", "Units", "Dashboard", "Labeling", "System", "API", "Admin"]),
    ):
        page = sign_in(context, asgi_server, username, "a-long-passphrase" if username == "sam" else "pw")
        assert urlsplit(page.url).path == landing, username
        assert _nav(page) == nav, username
        if username == "nobody":
            assert "Your account has no role yet" in page.text_content("main")
        if username == "ines":
            forbidden = page.goto(f"{asgi_server.url}/dashboard/")
            assert forbidden.status == 403 and "Your role cannot open this page" in page.text_content("main")
        page.click("text=Sign out")
        page.wait_for_url(f"{asgi_server.url}/accounts/login/")
        page.close()
    context.close()
