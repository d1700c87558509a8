"""Browser tests: Debian's Chromium driven by Playwright against the real ASGI server.

`asgi_server` runs `uvicorn config.asgi:application` in a subprocess on the test database, Redis
and media folder (HTTP and WebSockets, as in production); `browser` is one headless Chromium
per test module. Without Chromium the tests skip, saying why (`.ci/run` installs it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from deploy.topology import free_port
from tests.conftest import start_test_process, stop_test_process
from tests.inspection.conftest import (  # noqa: F401
    device_client,
    make_model_version,
    make_station,
    registered,
    stain_bundle,
    tiny_bundle,
)

CHROMIUM = os.environ.get("LOUPE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SERVER_START_TIMEOUT_SECONDS = 60.0


@pytest.fixture(scope="module")
def browser():
    """Module-scoped: Playwright's sync API holds an event loop on the main thread while it runs,
    which other tests' `async_to_sync` calls must not find."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium package (.ci/run does)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread, which Django reads as "async
    # context" and refuses database calls in; the test's own ORM calls are ordinary sync code.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            yield launched
            launched.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@dataclass
class AsgiServer:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def asgi_server(transactional_db, media_root: Path, redis_client, tmp_path: Path) -> Iterator[AsgiServer]:
    """uvicorn on the test database (committed by `transactional_db`), Redis and media root."""
    port = free_port()
    log_path = tmp_path / "uvicorn.log"
    command = [
        sys.executable, "-m", "uvicorn", "config.asgi:application",
        "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off", "--no-access-log",
    ]  # fmt: skip
    process = start_test_process(command, log_path=log_path)
    server = AsgiServer(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    try:
        _wait_until_serving(server)
        yield server
    finally:
        stop_test_process(process, timeout=10)


def _wait_until_serving(server: AsgiServer) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"uvicorn exited with status {server.process.returncode}:\n{server.log()}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{server.url}/accounts/login/", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    pytest.fail(f"uvicorn did not answer within {SERVER_START_TIMEOUT_SECONDS:.0f} s:\n{server.log()}")


def sign_in(context, server: AsgiServer, username: str, password: str = "pw"):
    """A page of `context`, signed in through the login form (and on the role's start page)."""
    page = context.new_page()
    page.goto(f"{server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: url.startswith(server.url) and "/accounts/login/" not in url)
    page.wait_for_load_state()
    return page
