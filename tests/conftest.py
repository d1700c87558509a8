"""Fixtures shared by the whole suite.

Run the suite with `make test` (or `python tests/run.py ARGS`): it picks PostgreSQL or SQLite,
a Redis, and a throwaway `LOUPE_DATA_DIR` before Django reads its settings.

- `media_root`: uploaded files go to a per-test temporary folder;
- `redis_client`: a client on the test Redis database, emptied before and after the test;
- `live_celery_worker`: a real Celery worker process on the test database and broker;
- marker `postgres`: the test needs PostgreSQL row locking and is skipped on SQLite;
- marker `slow`: left out of the default run (`-m slow` runs them).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from config.embedded import EmbeddedRedis, die_with_parent, start_embedded_redis

REPOSITORY = Path(__file__).resolve().parent.parent
WORKER_START_TIMEOUT_SECONDS = 60.0
WORKER_STOP_TIMEOUT_SECONDS = 15.0


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("LOUPE_TEST_RUN") != "1":
        raise pytest.UsageError(
            "Run the tests with `make test ARGS='...'` or `.venv/bin/python tests/run.py ...`: "
            "it chooses the database and Redis and isolates LOUPE_DATA_DIR from your own data."
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from django.db import connection

    if connection.vendor != "sqlite":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL row locking; this run uses SQLite")
    for item in items:
        if item.get_closest_marker("postgres"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """On SQLite the test database is the data directory's own database file (the data
    directory is throwaway), so worker subprocesses reach it with no extra settings."""
    from django.conf import settings
    from django.db import connection

    database = settings.DATABASES["default"]
    if connection.vendor == "sqlite":
        database.setdefault("TEST", {})["NAME"] = str(database["NAME"])


@pytest.fixture(scope="session", autouse=True)
def embedded_redis() -> Iterator[EmbeddedRedis | None]:
    """The embedded Redis for the whole session, when no `REDIS_URL` is set."""
    from django.conf import settings

    if not settings.EMBEDDED_REDIS:
        yield None
        return
    server = start_embedded_redis(settings.LOUPE_DATA_DIR)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def event_notices_due() -> None:
    """Each test starts with the dashboards' notices due at once (inspection.events holds a
    station's next notice for a second after the last, in the process's publisher): a test's
    first notice must not wait on an earlier test's."""
    from inspection.events import station_events_flush

    station_events_flush()


@pytest.fixture(autouse=True)
def failure_counters_cleared() -> None:
    """Each test starts with no failed sign-in or device key counted (inspection.throttling):
    the suite's many wrong keys from 127.0.0.1 would otherwise trip the limits of later tests."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def media_root(settings, tmp_path: Path) -> Path:
    path = tmp_path / "media"
    path.mkdir()
    settings.MEDIA_ROOT = path
    return path


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """A client on the test Redis database (tests/run.py gives each run its own), emptied
    before and after the test."""
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@dataclass
class LiveCeleryWorker:
    hostname: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def channel_layer():
    """A channel layer of the test's own. channels_redis binds asyncio locks to the event loop that
    first waits on them, and a receive cancelled while it waits for the previous message's backup
    clean-up leaves its lock behind; every `async_to_sync` runs a new loop, so a layer shared by
    tests fails the next one that waits on that lock ("bound to a different event loop"). A server
    process has one loop for its life; the tests have one per scenario."""
    yield channel_layer_renew()
    channel_layer_renew()


def channel_layer_renew():
    """Drop the process's channel layer; the next `get_channel_layer()` makes a new one."""
    from channels import DEFAULT_CHANNEL_LAYER
    from channels.layers import channel_layers, get_channel_layer

    channel_layers.backends.pop(DEFAULT_CHANNEL_LAYER, None)
    return get_channel_layer()


@pytest.fixture
def live_celery_worker(transactional_db, media_root: Path, redis_client, tmp_path: Path):
    """A real `celery worker` process (solo pool) on the test database, broker and media root.

    The broker database is emptied first, so the worker only sees tasks sent by this test.
    Data the test writes is visible to the worker because `transactional_db` commits it.
    """
    from django.conf import settings

    from config.celery import app

    hostname = f"loupe-test-{uuid.uuid4().hex[:8]}@localhost"
    log_path = tmp_path / "celery-worker.log"
    command = [
        sys.executable, "-m", "celery", "-A", "config", "worker",
        "--pool", "solo", "--concurrency", "1", "--loglevel", "INFO",
        "--hostname", hostname, "--without-mingle", "--without-gossip",
        "--queues", f"{settings.CELERY_TASK_DEFAULT_QUEUE},{settings.LOUPE_TRAINING_QUEUE}",
    ]  # fmt: skip
    process = start_test_process(command, log_path=log_path)
    worker = LiveCeleryWorker(hostname=hostname, process=process, log_path=log_path)
    try:
        _wait_for_worker(app, worker)
        yield worker
    finally:
        _stop_worker(worker)


def _wait_for_worker(app, worker: LiveCeleryWorker) -> None:
    deadline = time.monotonic() + WORKER_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            pytest.fail(f"The Celery worker exited with status {worker.process.returncode}:\n{worker.log()}")
        if app.control.ping(destination=[worker.hostname], timeout=0.5):
            return
    pytest.fail(
        f"The Celery worker did not answer within {WORKER_START_TIMEOUT_SECONDS:.0f} s:\n{worker.log()}"
    )


def _stop_worker(worker: LiveCeleryWorker) -> None:
    stop_test_process(worker.process, timeout=WORKER_STOP_TIMEOUT_SECONDS)


def start_test_process(command: list[str], *, log_path: Path) -> subprocess.Popen:
    """A subprocess of the system (a Celery worker, a web server) on this test's database, Redis
    and media root, its output in `log_path`, killed with the test run if that dies."""
    from django.conf import settings
    from django.db import connection

    environment = dict(os.environ)
    environment["LOUPE_MEDIA_ROOT"] = str(settings.MEDIA_ROOT)
    environment["PYTHONUNBUFFERED"] = "1"
    if connection.vendor != "sqlite":
        environment["DATABASE_URL"] = _database_url_with_name(
            os.environ["DATABASE_URL"], connection.settings_dict["NAME"]
        )
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            command,
            cwd=REPOSITORY,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )


def stop_test_process(process: subprocess.Popen, *, timeout: float) -> None:
    """SIGTERM, then after `timeout` SIGKILL for its whole process group."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _database_url_with_name(url: str, name: str) -> str:
    return urlsplit(url)._replace(path=f"/{name}").geturl()
