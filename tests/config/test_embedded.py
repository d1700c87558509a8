"""The embedded/external switch in the settings, the embedded Redis, the live worker, run_stack."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis

from config.embedded import embedded_redis_socket, start_embedded_redis
from deploy.topology import free_port

REPOSITORY = Path(__file__).resolve().parents[2]

PRINT_SETTINGS = """
import json
from django.conf import settings
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "database_name": str(settings.DATABASES["default"]["NAME"]),
    "conn_max_age": settings.DATABASES["default"].get("CONN_MAX_AGE", 0),
    "redis_url": settings.REDIS_URL,
    "broker_url": settings.CELERY_BROKER_URL,
    "channel_hosts": settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"],
    "mlflow_tracking_uri": settings.MLFLOW_TRACKING_URI,
    "media_root": str(settings.MEDIA_ROOT),
}))
"""


def _settings_in_subprocess(environment: dict[str, str]) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=REPOSITORY,
        env={"DJANGO_SETTINGS_MODULE": "config.settings", **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout)


def test_settings_default_to_embedded_services_under_the_data_dir(tmp_path):
    data_dir = tmp_path.resolve()

    loaded = _settings_in_subprocess({"LOUPE_DATA_DIR": str(data_dir)})

    assert loaded["engine"] == "config.embedded_sqlite"
    assert loaded["database_name"] == str(data_dir / "loupe.sqlite3")
    assert loaded["conn_max_age"] == 0  # the line's pool keeps its threads' connections (config.line_http)
    assert loaded["redis_url"] == f"unix://{embedded_redis_socket(data_dir)}"
    assert loaded["broker_url"] == f"redis+socket://{embedded_redis_socket(data_dir)}"
    assert loaded["channel_hosts"] == [{"address": loaded["redis_url"], "socket_timeout": None}]
    assert loaded["mlflow_tracking_uri"] == f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
    assert loaded["media_root"] == str(data_dir / "media")


def test_settings_use_external_services_when_urls_are_set(tmp_path):
    loaded = _settings_in_subprocess(
        {
            "LOUPE_DATA_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://loupe:secret@db.example:5432/loupe",
            "REDIS_URL": "redis://cache.example:6379/2",
            "MLFLOW_TRACKING_URI": "http://mlflow.example:5000",
        }
    )

    assert loaded["engine"] == "django.db.backends.postgresql"
    assert loaded["database_name"] == "loupe"
    assert loaded["conn_max_age"] == 0
    assert loaded["redis_url"] == "redis://cache.example:6379/2"
    assert loaded["broker_url"] == "redis://cache.example:6379/2"
    assert loaded["channel_hosts"] == [{"address": "redis://cache.example:6379/2", "socket_timeout": None}]
    assert loaded["mlflow_tracking_uri"] == "http://mlflow.example:5000"


def _process_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _wait_until_gone(pids, timeout: float = 15.0) -> set[int]:
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _process_alive(pid)}
        time.sleep(0.1)
    return alive


def test_embedded_redis_answers_and_stops_cleanly(tmp_path):
    server = start_embedded_redis(tmp_path)
    client = redis.Redis(unix_socket_path=str(server.socket_path))
    try:
        assert client.ping()
        assert client.config_get("port") == {"port": "0"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        client.close()
        server.stop()

    assert not _process_alive(server.pid)
    assert not server.socket_path.exists()
    assert not server.pidfile_path.exists()


def test_embedded_redis_already_running_is_reused(tmp_path):
    first = start_embedded_redis(tmp_path)
    try:
        second = start_embedded_redis(tmp_path)
        assert second.pid == first.pid
        assert not second.owned

        second.stop()

        assert first.ping()
    finally:
        first.stop()
    assert not _process_alive(first.pid)


def test_embedded_redis_keeps_queued_messages_across_a_restart(tmp_path):
    server = start_embedded_redis(tmp_path)
    client = redis.Redis(unix_socket_path=str(server.socket_path))
    client.lpush("celery", "queued task")
    client.close()
    server.stop()

    restarted = start_embedded_redis(tmp_path)
    client = redis.Redis(unix_socket_path=str(restarted.socket_path))
    try:
        assert client.lrange("celery", 0, -1) == [b"queued task"]
    finally:
        client.close()
        restarted.stop()


def test_embedded_redis_starts_over_a_stale_socket_and_pidfile(tmp_path):
    directory = embedded_redis_socket(tmp_path).parent
    directory.mkdir(parents=True)
    embedded_redis_socket(tmp_path).write_text("left by a killed run")
    # A pid that is alive but is not a redis-server: it must not be signalled.
    (directory / "redis.pid").write_text(str(os.getpid()))

    server = start_embedded_redis(tmp_path)
    try:
        assert server.owned
        assert server.ping()
    finally:
        server.stop()


def test_embedded_redis_dies_with_the_process_that_started_it(tmp_path):
    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from config.embedded import start_embedded_redis\n"
            "server = start_embedded_redis(sys.argv[1])\n"
            "print(server.pid, flush=True)\n"
            "time.sleep(120)\n",
            str(tmp_path),
        ],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        redis_pid = int(starter.stdout.readline())
        assert _process_alive(redis_pid)

        starter.kill()
        starter.wait()

        assert _wait_until_gone([redis_pid]) == set()
        assert not embedded_redis_socket(tmp_path).exists()
    finally:
        starter.kill()
        starter.wait()
        starter.stdout.close()


def test_live_celery_worker_answers_control_ping(live_celery_worker):
    from config.celery import app

    replies = app.control.ping(destination=[live_celery_worker.hostname], timeout=2)

    assert replies == [{live_celery_worker.hostname: {"ok": "pong"}}]


def _descendants(root_pid: int) -> set[int]:
    children_of: dict[int, list[int]] = {}
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_path.read_text().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        children_of.setdefault(int(fields[1]), []).append(int(stat_path.parent.name))
    found: set[int] = set()
    pending = [root_pid]
    while pending:
        for child in children_of.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def _wait_for_http_answer(url: str, process: subprocess.Popen, log_path: Path, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"run_stack exited with status {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {timeout:.0f} s:\n{log_path.read_text()}")


PREFIXES = ("[redis]", "[web]", "[worker]", "[beat]")


@pytest.mark.slow
def test_run_stack_serves_health_and_leaves_no_process_behind(tmp_path):
    port = free_port()
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DATABASE_URL", "REDIS_URL", "MLFLOW_TRACKING_URI", "CELERY_BROKER_URL"}
    }
    environment.update(LOUPE_DATA_DIR=str(tmp_path / "data"), PORT=str(port), HOST="127.0.0.1")
    log_path = tmp_path / "run_stack.log"
    with open(log_path, "wb") as log:
        launcher = subprocess.Popen(
            [sys.executable, "manage.py", "run_stack", "--skip-demo"],
            cwd=REPOSITORY,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_http_answer(f"http://127.0.0.1:{port}/api/v1/health", launcher, log_path, timeout=180)
        children = _descendants(launcher.pid)
        # Redis, the web server, the worker (and its pool process) and beat.
        assert len(children) >= 4, log_path.read_text()
        # The web process answers before the Celery processes have said a word: wait until each
        # child has written its first line, so the stop below meets every one of them started.
        deadline = time.monotonic() + 60
        while not all(prefix in log_path.read_text() for prefix in PREFIXES) and time.monotonic() < deadline:
            time.sleep(0.2)

        launcher.send_signal(signal.SIGTERM)
        status = launcher.wait(timeout=60)

        assert status == 0, log_path.read_text()
        assert _wait_until_gone(children, timeout=5) == set(), log_path.read_text()
        output = log_path.read_text()
        for prefix in PREFIXES:
            assert prefix in output
        assert "[stack] web layout for " in output  # the process/thread layout it picked
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
