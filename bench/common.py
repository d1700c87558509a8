"""Helpers shared by the benchmarks: a throwaway embedded Loupe, commands timed as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
DATASETS = REPOSITORY.parent / "shared" / "datasets"
OUT = REPOSITORY / "bench" / "out"


def embedded_environment(data_dir: Path) -> dict[str, str]:
    """The embedded default (SQLite, local MLflow) in `data_dir`, whatever the caller's shell has."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "MLFLOW_TRACKING_URI")
    }
    env["LOUPE_DATA_DIR"] = str(data_dir)
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def process_start(command: list[str], *, environment: dict[str, str], log_path: Path) -> subprocess.Popen:
    """A system process of the benchmark (uvicorn, a Celery worker): its own process group, its
    output in `log_path`, killed if the benchmark dies."""
    from config.embedded import die_with_parent

    with open(log_path, "wb") as log:
        return subprocess.Popen(
            command,
            cwd=REPOSITORY,
            env={**environment, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )


def process_stop(process: subprocess.Popen, *, timeout: float) -> None:
    """SIGTERM to the process group of a `process_start` process, SIGKILL after `timeout` seconds."""
    import signal

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def log_tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-4000:]


def manage(env: dict[str, str], *args: str, json_output: bool = False) -> tuple[float, dict | str]:
    """Run `manage.py ARGS`; return its wall time and its stdout (parsed when `json_output`)."""
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, str(REPOSITORY / "manage.py"), *args],
        env=env,
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr[-4000:])
        raise SystemExit(f"manage.py {' '.join(args)} failed with exit code {completed.returncode}")
    if json_output:
        return seconds, json.loads(completed.stdout.strip().splitlines()[-1])
    return seconds, completed.stdout


def django_start(environment: dict[str, str]) -> None:
    """Migrate the benchmark's database and set Django up in this process on `environment`."""
    manage(environment, "migrate", "--noinput")
    os.environ.update(environment)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def require_dataset(name: str) -> Path:
    path = DATASETS / name
    if not path.exists():
        raise SystemExit(f"skipped: {path} not found (the benchmark needs ../shared/datasets/{name})")
    return path


def goal_check(measured: float, goal: float, met: bool) -> dict:
    """One goal as the results JSON records it."""
    return {"measured": measured, "goal": goal, "met": met}


def write_result(name: str, result: dict) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    return path


LOCAL_POSTGRES = "postgres://postgres@127.0.0.1:5432"
LOCAL_REDIS = "redis://127.0.0.1:6379"


class Backends:
    """PostgreSQL and Redis on this machine when they answer, else the embedded ones.

    The database (`loupe_bench_<name>_<slot>`) is created for the run and dropped after it; the
    Redis database number is a test-run slot (tests/run.py's), so no test run on this machine
    uses it meanwhile.
    """

    def __init__(self, data_dir: Path, *, embedded: bool, name: str) -> None:
        import psycopg

        from config.embedded import redis_answers, start_embedded_redis
        from tests.run import acquire_slot

        self.slot, self._slot_lock = acquire_slot()
        self.database_name = f"loupe_bench_{name}_{self.slot}"
        self.database_url = ""
        self.redis_url = ""
        self._embedded_redis = None
        if not embedded and _postgres_answers():
            with psycopg.connect(f"{_libpq(LOCAL_POSTGRES)}/postgres", autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)')
                connection.execute(f'CREATE DATABASE "{self.database_name}"')
            self.database_url = f"{LOCAL_POSTGRES}/{self.database_name}"
        if not embedded and redis_answers(LOCAL_REDIS):
            self.redis_url = f"{LOCAL_REDIS}/{self.slot}"
        else:
            self._embedded_redis = start_embedded_redis(data_dir)

    def describe(self) -> dict[str, str]:
        return {
            "database": f"PostgreSQL {self.database_url}" if self.database_url else "SQLite (embedded)",
            "redis": self.redis_url or "embedded Redis (unix socket)",
        }

    def environment(self) -> dict[str, str]:
        # Empty means "embedded" to the settings.
        return {"DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url, "MLFLOW_TRACKING_URI": ""}

    def close(self) -> None:
        import psycopg
        import redis

        if self.database_url:
            with psycopg.connect(f"{_libpq(LOCAL_POSTGRES)}/postgres", autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)')
        if self.redis_url:
            client = redis.Redis.from_url(self.redis_url)
            client.flushdb()
            client.close()
        if self._embedded_redis is not None:
            self._embedded_redis.stop()
        self._slot_lock.close()


def _postgres_answers() -> bool:
    import psycopg

    try:
        with psycopg.connect(f"{_libpq(LOCAL_POSTGRES)}/postgres", connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def _libpq(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)
