"""The production topology (deploy/local-production) started whole, and used as a factory would:
the line posting 1920x1080 frames over HTTPS through nginx, an inspector in Chromium signing in
through the proxy and deciding units in a row, each decision reaching the line's long-poll and the
page live over the WebSocket (wss through the proxy). Slow: it starts PostgreSQL, Redis, MLflow,
two web processes, two workers, the trainer, beat and nginx of its own."""

from __future__ import annotations

import io
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from deploy.topology import LocalProduction, postgres_binaries
from tests.browser.conftest import CHROMIUM, CHROMIUM_FLAGS

pytestmark = pytest.mark.slow

PASSWORD = "inspect-the-line-42"


def _missing() -> str | None:
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        return "no nginx: apt-get install nginx (.ci/run does for the slow run)"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM}"
    try:
        postgres_binaries()
    except RuntimeError as error:
        return str(error)
    return None


@pytest.fixture(scope="module")
def topology():
    reason = _missing()
    if reason:
        pytest.skip(reason)
    with LocalProduction() as running:
        running.manage("create_station", "line-1", "--level", "human")
        running.device_key = running.manage("create_device_key", "line-1").strip()
        running.manage(
            "shell",
            "-c",
            "from django.contrib.auth.models import Group, User;"
            f"user = User.objects.create_user('ines', password='{PASSWORD}');"
            "user.groups.add(Group.objects.get_or_create(name='inspector')[0]);"
            "from inspection.models import Station;"
            "Station.objects.filter(slug='line-1').update(defect_classes=['scratch', 'crack'])",
        )
        yield running


def frame(seed: int) -> bytes:
    """A 1920x1080 JPEG as the line camera sends."""
    pixels = np.random.default_rng(seed).integers(60, 200, size=(1080, 1920, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


class Line:
    def __init__(self, topology: LocalProduction) -> None:
        self.topology = topology
        self.session = requests.Session()
        # Per request, not the session's: requests lets REQUESTS_CA_BUNDLE override a session's.
        self.verify = str(topology.certificate)
        self.session.headers["Authorization"] = f"Api-Key {topology.device_key}"

    def post(self, serial: str, seed: int) -> dict:
        response = self.session.post(
            f"{self.topology.url}/api/v1/units/",
            files={"image": ("unit.jpg", frame(seed), "image/jpeg")},
            data={"serial": serial},
            headers={"Idempotency-Key": f"key-{serial}"},
            verify=self.verify,
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return response.json()

    def wait(self, unit: dict, seconds: float = 15) -> dict:
        response = self.session.get(
            f"{self.topology.url}{unit['url']}",
            params={"wait": seconds},
            verify=self.verify,
            timeout=seconds + 5,
        )
        assert response.status_code == 200, response.text
        return response.json()


def test_plain_http_is_sent_to_https_and_the_answers_carry_the_production_headers(topology):
    http = f"http://localhost:{topology.ports['http']}/accounts/login/"
    redirect = requests.get(http, allow_redirects=False, timeout=5)
    assert redirect.status_code == 301
    assert redirect.headers["Location"] == f"{topology.url}/accounts/login/"
    page = requests.get(f"{topology.url}/accounts/login/", verify=str(topology.certificate), timeout=10)
    assert page.status_code == 200
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Server" not in page.headers or "uvicorn" not in page.headers["Server"]
    session_cookie = page.cookies.get("csrftoken")
    assert session_cookie is not None
    assert all(cookie.secure for cookie in page.cookies)


def test_an_inspector_decides_units_in_a_row_over_https_and_sees_them_live(topology):
    from playwright.sync_api import sync_playwright

    line = Line(topology)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        context = browser.new_context(ignore_https_errors=True, viewport={"width": 1440, "height": 900})
        page = context.new_page()
        refused: list[str] = []
        page.on(
            "response",
            lambda response: (
                refused.append(f"{response.status} {response.url}") if response.status >= 400 else None
            ),
        )
        console: list[str] = []
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))

        def wait_for(expression: str) -> None:
            try:
                page.wait_for_function(expression, timeout=15_000)
            except Exception as error:  # noqa: BLE001 (say what the page shows and what it was refused)
                status = page.inner_text("#status")
                raise AssertionError(
                    f"{expression}: {error}\nstatus: {status!r}\nrefused: {refused}\nconsole: {console}"
                ) from None

        # given the inspector signed in through the proxy, on the station page, its feed live
        page.goto(f"{topology.url}/accounts/login/")
        page.fill("#id_username", "ines")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/accounts/login/" not in url)
        page.goto(f"{topology.url}/stations/line-1/")
        page.wait_for_selector("#live.ok")
        # when the line posts units one after another and the inspector decides each as it appears
        verdicts = {}
        for index, key in enumerate(["p", "f", "p", "f"]):
            serial = f"SN-PROD-{index}"
            unit = line.post(serial, seed=index)
            wait_for(f"() => document.getElementById('unit-serial').textContent === '{serial}'")
            answer: dict = {}
            poll = threading.Thread(target=lambda unit=unit, answer=answer: answer.update(line.wait(unit)))
            poll.start()
            if key == "f":
                page.keyboard.press("1")
            page.keyboard.press(key)
            verdict = "pass" if key == "p" else "fail"
            wait_for(f"() => document.getElementById('status').textContent.includes('{serial}: {verdict}')")
            poll.join(timeout=20)
            verdicts[serial] = (answer.get("decision"), answer.get("decided_by"))
        # then every decision reached the line, and nothing on the way was refused as a forgery
        assert verdicts == {
            "SN-PROD-0": ("pass", "human"),
            "SN-PROD-1": ("fail", "human"),
            "SN-PROD-2": ("pass", "human"),
            "SN-PROD-3": ("fail", "human"),
        }
        assert refused == []
        # and the page is empty again, still live, for the next unit
        page.wait_for_selector("#empty", state="visible", timeout=10_000)
        assert page.is_visible("#live.ok")
        context.close()
        browser.close()
