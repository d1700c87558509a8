"""The line's POST /api/v1/units/ through Django's sync handler on a fixed pool of threads.

Django's ASGI handler runs a sync view (every DRF view is one) through asgiref: a new thread per
request (its `ThreadSensitiveContext`), and four more hops between the event loop and threads
per request (the request_started signal, the middleware chain adapted to async, the response's
close). For a request that is all CPU work (decode, forward, a few INSERTs) that bridge was the
largest cost around the model, and threads without bound contend for two cores: 52 / 57 / 58
units/s at 1 / 4 / 16 clients through it, 53 / 87 / 83 through this pool (measured on 2 cores).

`PooledHandler` reads the body on the event loop as Django does, then runs the whole request
(request_started, the sync middleware chain and view, the response's close) as one job on
`LOUPE_LINE_THREADS` threads, and sends the answer. The pool's threads keep their database
connections (`connections_keep`). The time a request waits for a thread is counted in its
latency (`QUEUED_AT`, read by config.metrics). Everything else (pages, the rest of the API)
keeps Django's ASGI handler.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.db import connections
from django.urls import set_script_prefix

# The scope key holding when the request reached the application (time.perf_counter()).
QUEUED_AT = "loupe.queued_at"
LINE_PATH = "/api/v1/units/"


def is_line_post(scope: dict) -> bool:
    return scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == LINE_PATH


class PooledHandler(ASGIHandler):
    """An ASGI application for plain request/response views: each request is one job on a pool of
    `threads` threads, through Django's sync middleware chain (as under WSGI)."""

    def __init__(self, threads: int) -> None:
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="loupe-line")

    async def __call__(self, scope, receive, send) -> None:
        scope[QUEUED_AT] = time.perf_counter()
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        # The request runs to its end even if the line hangs up meanwhile: a unit it committed is
        # kept (the line's retry with its Idempotency-Key replays it).
        status, headers, content = await asyncio.get_running_loop().run_in_executor(
            self._pool, self._respond, scope, body_file
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def _respond(self, scope, body_file) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        try:
            set_script_prefix(get_script_prefix(scope))
            signals.request_started.send(sender=self.__class__, scope=scope)
            request, response = self.create_request(scope, body_file)
            if request is not None:
                response = self.get_response(request)
                response._handler_class = self.__class__
            connections_keep()
            try:
                content = b"".join(response) if response.streaming else response.content
                return response.status_code, _headers(response), content
            finally:
                response.close()  # request_finished: a failed connection is closed
        finally:
            body_file.close()


def connections_keep() -> None:
    """Keep this thread's database connections for its next request: the pool's threads live as
    long as the process (opening an SQLite connection per request cost ~1.3 ms of CPU a unit).
    request_finished still closes one that failed or was left outside autocommit; a connection
    from PostgreSQL's pool goes back to the pool as before."""
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and not connection.settings_dict["OPTIONS"].get("pool"):
            connection.close_at = None


def _headers(response) -> list[tuple[bytes, bytes]]:
    headers = [
        (
            name.encode("ascii") if isinstance(name, str) else name,
            value.encode("latin1") if isinstance(value, str) else value,
        )
        for name, value in response.items()
    ]
    headers += [
        (b"Set-Cookie", cookie.output(header="").encode("ascii").strip())
        for cookie in response.cookies.values()
    ]
    return headers
