"""A station's webhook endpoint for tests: a small HTTP server on 127.0.0.1 (a free port), in a
thread, recording every request it gets (`webhook_receiver` in conftest.py serves one per test)."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass(frozen=True)
class ReceivedPost:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """What the endpoint got. It answers `statuses` in turn, then the last one, each with
    `answer_body` and, when set, a `Location` header (a redirect)."""

    url: str
    port: int
    statuses: list[int] = field(default_factory=lambda: [200])
    answer_body: bytes = b""
    location: str = ""
    posts: list[ReceivedPost] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, post: ReceivedPost) -> int:
        with self.lock:
            self.posts.append(post)
            return self.statuses[min(len(self.posts), len(self.statuses)) - 1]

    def received(self) -> list[ReceivedPost]:
        with self.lock:
            return list(self.posts)


@contextmanager
def webhook_receiver_serving(*, tls: tuple[Path, Path] | None = None) -> Iterator[WebhookReceiver]:
    """Serve one receiver; with `tls` (certificate, key) it speaks HTTPS."""
    receiver: WebhookReceiver

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            post = ReceivedPost(self.command, self.path, dict(self.headers.items()), body)
            status = receiver.record(post)
            self.send_response(status)
            if receiver.location:
                self.send_header("Location", receiver.location)
            self.send_header("Content-Length", str(len(receiver.answer_body)))
            self.end_headers()
            self.wfile.write(receiver.answer_body)

        do_POST = do_GET = _answer

        def log_message(self, format: str, *args) -> None:
            pass  # keep the test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    scheme = "https" if tls else "http"
    receiver = WebhookReceiver(url=f"{scheme}://127.0.0.1:{port}/loupe/decisions", port=port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
