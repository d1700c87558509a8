"""The request body cap, applied before Django reads a byte of the body (docs/operations.md).

Django's ASGI handler reads a whole body before any view or middleware runs, and
`DATA_UPLOAD_MAX_MEMORY_SIZE` does not cover uploaded files, so the cap sits in front of it: a
declared `Content-Length` over `LOUPE_MAX_REQUEST_BYTES` is answered at once, and a body sent
without one (chunked) is counted as it streams and cut off when it passes the cap. Either way
the answer is a JSON 413 naming the limit, and the rest of the body is never read.
"""

from __future__ import annotations

import json

from django.conf import settings


class RequestBodyLimit:
    """ASGI middleware around Django's HTTP application."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = settings.LOUPE_MAX_REQUEST_BYTES
        declared = _content_length(scope)
        if declared == "invalid":
            await _answer(send, 400, {"detail": "the Content-Length header is not a number of bytes"})
            return
        if declared is not None and declared > limit:
            await _refuse(send, limit, f"the request body is {declared:,} bytes")
            return
        received = 0
        over = False
        started = False

        async def counted_receive():
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Django reads a disconnect as an aborted request and answers nothing.
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted_receive, tracked_send)
        if over and not started:
            await _refuse(send, limit, f"the request body passed {limit:,} bytes")


def _content_length(scope) -> int | str | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else "invalid"
    return None


async def _refuse(send, limit: int, what: str) -> None:
    await _answer(
        send,
        413,
        {
            "detail": f"{what}; the limit is {limit:,} bytes (LOUPE_MAX_REQUEST_BYTES)",
            "code": "request_too_large",
            "limit": limit,
        },
    )


async def _answer(send, status: int, body: dict) -> None:
    content = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})
