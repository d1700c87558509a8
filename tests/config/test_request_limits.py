"""The request body cap (config/request_limits.py): a body over LOUPE_MAX_REQUEST_BYTES is
refused with a JSON 413 naming the limit before it is read, through the real ASGI application
and through uvicorn."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from asgiref.sync import async_to_sync

from config.asgi import application
from tests.asgi import http_scope
from tests.browser.conftest import asgi_server  # noqa: F401

MEGABYTE = 1024 * 1024


def _post(headers: list[tuple[bytes, bytes]], chunks: int, chunk_size: int = MEGABYTE):
    """POST /api/v1/units/ through the ASGI application, its body in `chunks` messages; the
    answer's status, JSON body and how many chunks the application read."""
    read = 0
    sent = []

    async def receive():
        nonlocal read
        if read == chunks:  # the whole body was sent: the client waits for the answer
            await asyncio.Event().wait()
        read += 1
        return {"type": "http.request", "body": b"x" * chunk_size, "more_body": read < chunks}

    async def send(message):
        sent.append(message)

    async_to_sync(application)(http_scope("POST", "/api/v1/units/", headers), receive, send)
    start = next(message for message in sent if message["type"] == "http.response.start")
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), json.loads(body), read


def test_a_declared_body_over_the_limit_is_refused_unread(settings):
    settings.LOUPE_MAX_REQUEST_BYTES = 3 * MEGABYTE
    status, headers, body, read = _post([(b"content-length", str(200 * MEGABYTE).encode())], chunks=200)
    assert status == 413 and headers[b"content-type"] == b"application/json"
    assert body["code"] == "request_too_large" and body["limit"] == 3 * MEGABYTE
    assert "209,715,200 bytes; the limit is 3,145,728 bytes" in body["detail"]
    assert read == 0


def test_a_streamed_body_is_cut_off_once_it_passes_the_limit(settings):
    # given a chunked body (no Content-Length) of 200 MB
    settings.LOUPE_MAX_REQUEST_BYTES = 3 * MEGABYTE
    status, headers, body, read = _post([(b"transfer-encoding", b"chunked")], chunks=200)
    # then reading stops at the chunk that passed 3 MB, and the answer names the limit
    assert status == 413 and headers[b"content-type"] == b"application/json"
    assert "passed 3,145,728 bytes" in body["detail"]
    assert read == 4


def test_a_body_under_the_limit_reaches_the_api(settings):
    settings.LOUPE_MAX_REQUEST_BYTES = 3 * MEGABYTE
    status, _, body, read = _post([(b"content-length", str(2 * MEGABYTE).encode())], chunks=2)
    assert status == 401 and "credentials" in body["detail"]  # the API's own answer, unauthenticated
    assert read == 2


def test_an_invalid_content_length_is_a_json_400():
    status, _, body, read = _post([(b"content-length", b"lots")], chunks=1)
    assert status == 400 and "Content-Length" in body["detail"] and read == 0


def test_uvicorn_answers_413_before_the_body_is_sent(asgi_server):  # noqa: F811
    # given a request that declares 200 MB and sends only its headers
    host, port = asgi_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            b"POST /api/v1/units/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: Api-Key nope\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n"
            + f"Content-Length: {200 * MEGABYTE}\r\n\r\n".encode()
        )
        # then the answer comes without the server waiting for the body
        answer = b""
        while b"}" not in answer:
            part = connection.recv(65536)
            if not part:
                break
            answer += part
    head, _, content = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer
    assert b"content-type: application/json" in head.lower()
    assert json.loads(content)["code"] == "request_too_large"


@pytest.mark.parametrize("path", ["/api/v1/units/", "/accounts/login/"])
def test_the_limit_covers_every_path(settings, path):
    settings.LOUPE_MAX_REQUEST_BYTES = MEGABYTE
    sent = []

    async def receive():
        raise AssertionError("the body must not be read")

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(b"content-length", str(2 * MEGABYTE).encode())],
    }
    async_to_sync(application)(scope, receive, send)
    assert sent[0]["status"] == 413
