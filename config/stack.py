"""The whole Loupe stack on one machine, in the foreground (`manage.py run_stack`).

The launcher starts the embedded Redis (unless `REDIS_URL` points elsewhere), prepares the
database, then runs the web server, a Celery worker, a Celery worker for trainings and Celery
beat as child processes whose
output lines are prefixed with their name (`[web] ...`). On Ctrl-C or SIGTERM, or as soon as one
child exits, it stops every child (SIGTERM, then SIGKILL after a grace period) and exits.

Children live in their own process groups, so a Ctrl-C reaches only the launcher, which stops
them in order (Redis last). On Linux each child also gets SIGTERM if the launcher itself dies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from django.conf import settings

from config.embedded import EmbeddedRedis, die_with_parent, start_embedded_redis
from config.processes import ProcessOptions, process_command, shared_metrics_prepare

STOP_GRACE_SECONDS = 10.0
_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class StackOptions:
    data_dir: Path
    host: str = "0.0.0.0"
    port: int = 8000
    worker_concurrency: int = 1
    embedded_redis: bool = True


@dataclass(frozen=True)
class ChildSpec:
    name: str
    command: list[str]


class StackStopRequested(Exception):
    """Raised by the signal handler to leave whatever the launcher is doing."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number


def child_specs(options: StackOptions, *, python: str = sys.executable) -> list[ChildSpec]:
    process_options = ProcessOptions(
        data_dir=options.data_dir,
        host=options.host,
        port=options.port,
        concurrency=options.worker_concurrency,
        python=python,
    )
    return [
        ChildSpec(role, process_command(role, process_options))
        for role in ("web", "worker", "trainer", "beat")
    ]


def run_stack(
    options: StackOptions,
    *,
    prepare: Callable[[], str | None],
    output: TextIO | None = None,
    cwd: Path | None = None,
) -> int:
    """Run until a stop signal (exit status 0) or until a child exits (status 1).

    `prepare` runs after Redis is up and before the children start (migrations, demo data); the
    line it returns, if any, is printed once the stack is up (how to sign in).
    """
    printer = _PrefixedPrinter(output or sys.stdout)
    redis_server: EmbeddedRedis | None = None
    children: list[_Child] = []
    with _signals_raise_stop():
        try:
            if options.embedded_redis:
                redis_server = start_embedded_redis(options.data_dir)
                verb = "started" if redis_server.owned else "reusing"
                printer.line("redis", f"{verb} embedded Redis on {redis_server.url} (pid {redis_server.pid})")
            greeting = prepare()
            environment = _child_environment(options)
            printer.line("stack", f"web layout for {settings.WEB_LAYOUT.describe()}")
            for spec in child_specs(options):
                children.append(_Child.start(spec, environment=environment, cwd=cwd, printer=printer))
                printer.line("stack", f"started {spec.name} (pid {children[-1].process.pid})")
            printer.line("stack", f"Loupe is up on http://{options.host}:{options.port}/ (Ctrl-C stops it)")
            if greeting:
                printer.line("stack", greeting)
            return _supervise(children, redis_server, printer)
        except StackStopRequested as stop:
            printer.line("stack", f"{stop} received: stopping")
            return 0
        finally:
            with _signals_ignored():
                _stop_children(children, printer)
                if redis_server is not None and redis_server.owned:
                    redis_server.stop(timeout=STOP_GRACE_SECONDS)
                    printer.line("redis", "stopped")


def _supervise(children: list[_Child], redis_server: EmbeddedRedis | None, printer: _PrefixedPrinter) -> int:
    while True:
        for child in children:
            status = child.process.poll()
            if status is not None:
                printer.line("stack", f"{child.spec.name} exited with status {status}: stopping the stack")
                return 1
        if redis_server is not None and redis_server.owned and redis_server.process.poll() is not None:
            printer.line("stack", f"embedded Redis exited (see {redis_server.log_path}): stopping the stack")
            return 1
        time.sleep(_POLL_SECONDS)


def _child_environment(options: StackOptions) -> dict[str, str]:
    environment = dict(os.environ)
    environment["LOUPE_DATA_DIR"] = str(options.data_dir)
    environment["PYTHONUNBUFFERED"] = "1"
    environment.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    shared_metrics_prepare(settings.WEB_LAYOUT, options.data_dir, environment)
    return environment


class _PrefixedPrinter:
    def __init__(self, output: TextIO) -> None:
        self._output = output
        self._lock = threading.Lock()

    def line(self, name: str, text: str) -> None:
        with self._lock:
            self._output.write(f"[{name}] {text}\n")
            self._output.flush()


@dataclass
class _Child:
    spec: ChildSpec
    process: subprocess.Popen
    reader: threading.Thread

    @classmethod
    def start(
        cls, spec: ChildSpec, *, environment: dict[str, str], cwd: Path | None, printer: _PrefixedPrinter
    ) -> _Child:
        process = subprocess.Popen(
            spec.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        reader = threading.Thread(
            target=_forward_lines, args=(process, spec.name, printer), name=f"output-{spec.name}", daemon=True
        )
        reader.start()
        return cls(spec=spec, process=process, reader=reader)


def _forward_lines(process: subprocess.Popen, name: str, printer: _PrefixedPrinter) -> None:
    for raw_line in process.stdout:
        printer.line(name, raw_line.decode(errors="replace").rstrip("\n"))


def _stop_children(children: list[_Child], printer: _PrefixedPrinter) -> None:
    """SIGTERM each child, SIGKILL the process groups of those still alive after the grace period."""
    running = [child for child in children if child.process.poll() is None]
    for child in running:
        printer.line("stack", f"stopping {child.spec.name}")
        with contextlib.suppress(ProcessLookupError):
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in running:
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            printer.line("stack", f"{child.spec.name} did not stop in {STOP_GRACE_SECONDS:.0f} s: killing it")
    for child in children:
        # The whole group: also whatever the child started itself (e.g. Celery's pool processes).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, signal.SIGKILL)
        child.process.wait()
        child.reader.join(timeout=2)


@contextlib.contextmanager
def _signals_raise_stop() -> Iterator[None]:
    def request_stop(signal_number: int, frame: object) -> None:
        raise StackStopRequested(signal_number)

    previous = {number: signal.signal(number, request_stop) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """While stopping, a second Ctrl-C must not interrupt the cleanup and leave orphans."""
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
