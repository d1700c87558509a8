"""The line's POST /api/v1/units/ on a fixed pool of threads (config.line_http): bounded, each unit
committed before its answer, errors as JSON with nothing kept, everything else through Django's
ASGI handler, and through uvicorn."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time

import pytest
import requests
from asgiref.sync import async_to_sync
from django.db import close_old_connections, connections
from django.db.utils import ConnectionHandler

from config import asgi
from config.line_http import QUEUED_AT, PooledHandler, connections_keep
from inspection.enums import AutomationLevel
from inspection.models import Unit
from inspection.services.stations import device_key_create, station_create
from tests.asgi import http_scope
from tests.browser.conftest import asgi_server  # noqa: F401
from tests.inspection.factories import jpeg_bytes

BOUNDARY = "loupe-boundary"


def _multipart(fields: dict[str, str], image: bytes, filename: str = "unit.jpg") -> bytes:
    body = io.BytesIO()
    for name, value in fields.items():
        body.write(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    body.write(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n".encode()
    )
    body.write(image + f"\r\n--{BOUNDARY}--\r\n".encode())
    return body.getvalue()


async def _call(app, method: str, path: str, key: str, body: bytes = b"") -> tuple[int, dict, dict]:
    sent = []
    delivered = False

    async def receive():
        nonlocal delivered
        if delivered:  # the whole body is sent: the client waits for its answer
            await asyncio.Event().wait()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = http_scope(
        method,
        path,
        [
            (b"authorization", f"Api-Key {key}".encode()),
            (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
            (b"content-length", str(len(body)).encode()),
        ],
    )
    await app(scope, receive, send)
    start = next(message for message in sent if message["type"] == "http.response.start")
    content = b"".join(
        message.get("body", b"") for message in sent if message["type"] == "http.response.body"
    )
    headers = {name.lower(): value for name, value in start["headers"]}
    return start["status"], headers, json.loads(content)


@pytest.fixture
def line_key(transactional_db, media_root, redis_client) -> str:
    station = station_create(slug="line-http", level=AutomationLevel.HUMAN)
    return device_key_create(station=station, name="line computer")[1]


def test_line_posts_run_a_few_at_a_time_on_the_pool_and_each_is_committed(line_key):
    # given a pool of two threads, whose requests each take a while
    handler = PooledHandler(threads=2)
    running, most, threads = 0, 0, set()
    lock = threading.Lock()
    get_response = handler.get_response

    def slow_get_response(request):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            threads.add(threading.current_thread().name)
        try:
            time.sleep(0.05)
            return get_response(request)
        finally:
            with lock:
                running -= 1

    handler.get_response = slow_get_response
    image = jpeg_bytes(1, width=1280, height=720)

    # when eight units arrive at once
    async def post_all():
        bodies = [_multipart({"serial": f"SN-{n}"}, image) for n in range(8)]
        return await asyncio.gather(
            *(_call(handler, "POST", "/api/v1/units/", line_key, body) for body in bodies)
        )

    answers = async_to_sync(post_all)()

    # then at most two ran at once, on the pool's threads, and each answered unit is stored
    assert [status for status, _, _ in answers] == [201] * 8
    assert most == 2
    assert threads and all(name.startswith("loupe-line") for name in threads)
    assert all(headers[b"content-type"] == b"application/json" for _, headers, _ in answers)
    stored = {unit.id: unit.serial for unit in Unit.objects.all()}
    assert stored == {body["id"]: body["serial"] for _, _, body in answers}


def test_a_bad_image_is_a_json_400_naming_it_and_keeps_nothing(line_key):
    status, headers, body = async_to_sync(_call)(
        asgi.application,
        "POST",
        "/api/v1/units/",
        line_key,
        _multipart({"serial": "SN-bad"}, b"not an image"),
    )
    assert status == 400 and headers[b"content-type"] == b"application/json"
    assert "image" in json.dumps(body).lower()
    assert not Unit.objects.exists()


def test_the_line_post_goes_to_the_pool_and_the_rest_to_django(line_key, monkeypatch):
    seen = []
    original = PooledHandler._respond

    def respond(self, scope, body_file):
        seen.append((scope["method"], scope["path"], QUEUED_AT in scope))
        return original(self, scope, body_file)

    monkeypatch.setattr(PooledHandler, "_respond", respond)
    image = jpeg_bytes(2, width=1920, height=1080)
    status, _, created = async_to_sync(_call)(
        asgi.application, "POST", "/api/v1/units/", line_key, _multipart({"serial": "SN-pool"}, image)
    )
    assert status == 201
    status, _, listed = async_to_sync(_call)(
        asgi.application, "GET", f"/api/v1/units/{created['id']}/", line_key
    )
    assert status == 200 and listed["serial"] == "SN-pool"
    assert seen == [("POST", "/api/v1/units/", True)]


def test_through_uvicorn_units_answered_at_once_are_all_stored(asgi_server, line_key):  # noqa: F811
    image = jpeg_bytes(3, width=1280, height=720)
    answers: list[requests.Response] = []

    def client(number: int) -> None:
        with requests.Session() as session:
            for index in range(3):
                answers.append(
                    session.post(
                        f"{asgi_server.url}/api/v1/units/",
                        headers={"Authorization": f"Api-Key {line_key}"},
                        data={"serial": f"SN-{number}-{index}"},
                        files={"image": ("unit.jpg", image, "image/jpeg")},
                        timeout=60,
                    )
                )

    clients = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    assert sorted(answer.status_code for answer in answers) == [201] * 18, asgi_server.log()
    assert set(Unit.objects.values_list("id", flat=True)) == {answer.json()["id"] for answer in answers}


def test_the_pool_keeps_its_threads_connections_and_still_closes_a_failed_one(tmp_path, django_db_blocker):
    # given a database the way the embedded default opens it, CONN_MAX_AGE 0
    alias = "line_http_sqlite"
    settings_dict = {
        "ENGINE": "config.embedded_sqlite",
        "NAME": str(tmp_path / "db.sqlite3"),
        "CONN_MAX_AGE": 0,
    }
    connections.settings[alias] = ConnectionHandler({"default": settings_dict}).settings["default"]
    try:
        with django_db_blocker.unblock():
            connection = connections[alias]
            connection.ensure_connection()
            opened = connection.connection
            # when a request of the pool ends
            connections_keep()
            close_old_connections()
            # then its connection is still there for the next one
            assert connection.connection is opened
            # unless it failed
            connection.errors_occurred = True
            connection.is_usable = lambda: False
            close_old_connections()
            assert connection.connection is None
            # and a thread outside the pool closes its own at the end of its request
            connection.ensure_connection()
            close_old_connections()
            assert connection.connection is None
    finally:
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]
