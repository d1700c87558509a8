"""Run the test suite (`make test`), choosing the database and Redis it runs against.

- `DATABASE_URL` / `REDIS_URL` from the environment when set (they must answer, or the run fails);
  set but empty, they ask for the embedded SQLite database / embedded Redis;
- else the local PostgreSQL on 127.0.0.1:5432 when it answers, with the local Redis on
  127.0.0.1:6379 when that answers too (each run takes its own Redis db number and test
  database name, so runs side by side do not disturb each other);
- else SQLite and the embedded Redis (row-locking tests are then skipped).

Each run gets a throwaway `LOUPE_DATA_DIR` (media, embedded Redis, MLflow store unless
`MLFLOW_TRACKING_URI` is set). Arguments are passed on to pytest; its exit status is returned.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

REPOSITORY = Path(__file__).resolve().parent.parent
if str(REPOSITORY) not in sys.path:
    sys.path.insert(0, str(REPOSITORY))  # run as a script: make the project importable
LOCAL_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379"
SLOT_LOCK_DIRECTORY = Path(tempfile.gettempdir())
SLOTS = range(15, 0, -1)


def postgres_answers(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(_libpq_url(url), connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def _is_postgres(url: str) -> bool:
    return url.partition("://")[0] in {"postgres", "postgresql", "pgsql", "postgis"}


def _libpq_url(url: str) -> str:
    # dj-database-url accepts the postgres:// family of schemes; libpq only these two.
    scheme, _, rest = url.partition("://")
    return f"postgresql://{rest}" if _is_postgres(url) else url


def acquire_slot() -> tuple[int, IO]:
    """A number no other test run on this machine holds: the run's Redis db and test DB suffix."""
    for slot in SLOTS:
        lock_file = open(SLOT_LOCK_DIRECTORY / f"loupe-tests-slot-{slot}.lock", "a")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            continue
        return slot, lock_file
    raise SystemExit(f"All {len(SLOTS)} test slots are taken by other test runs on this machine.")


def choose_backends(environment: dict[str, str], slot: int) -> tuple[dict[str, str], list[str]]:
    """The environment overrides for this run, and the notices to print."""
    overrides: dict[str, str] = {}
    notices: list[str] = []

    database_url = environment.get("DATABASE_URL")
    redis_url = environment.get("REDIS_URL")
    if database_url:
        use_postgres = _is_postgres(database_url)
        if use_postgres and not postgres_answers(database_url):
            raise SystemExit(
                f"DATABASE_URL is set but the database does not answer: {_redacted(database_url)}"
            )
    elif database_url is None and postgres_answers(LOCAL_POSTGRES_URL):
        overrides["DATABASE_URL"] = LOCAL_POSTGRES_URL
        use_postgres = True
    else:
        reason = "DATABASE_URL is empty" if database_url is not None else "PostgreSQL not reachable"
        notices.append(f"{reason}: tests run on SQLite; row-locking tests will be skipped")
        overrides["DATABASE_URL"] = ""
        use_postgres = False
    if use_postgres:
        overrides["LOUPE_TEST_DATABASE_NAME"] = (
            environment.get("LOUPE_TEST_DATABASE_NAME") or f"test_loupe_{slot}"
        )

    from config.embedded import redis_answers

    if redis_url:
        if not redis_answers(redis_url):
            raise SystemExit(f"REDIS_URL is set but Redis does not answer: {_redacted(redis_url)}")
    elif redis_url is None and use_postgres and redis_answers(LOCAL_REDIS_URL):
        overrides["REDIS_URL"] = f"{LOCAL_REDIS_URL}/{slot}"
    else:
        # Empty means "embedded": the settings treat an empty URL as unset.
        overrides["REDIS_URL"] = ""
        notices.append("tests use the embedded Redis")
    return overrides, notices


def main(arguments: list[str]) -> int:
    slot, slot_lock = acquire_slot()
    data_dir = Path(tempfile.mkdtemp(prefix="loupe-test-"))
    try:
        environment = dict(os.environ)
        overrides, notices = choose_backends(environment, slot)
        environment.update(overrides)
        environment["LOUPE_DATA_DIR"] = str(data_dir)
        environment["LOUPE_TEST_RUN"] = "1"
        for notice in notices:
            print(f"tests/run.py: {notice}", flush=True)
        print(
            "tests/run.py: database {database}, Redis {redis}, data dir {data_dir}".format(
                database=_redacted(environment["DATABASE_URL"]) or "SQLite (embedded)",
                redis=environment["REDIS_URL"] or "embedded",
                data_dir=data_dir,
            ),
            flush=True,
        )
        command = [sys.executable, "-m", "pytest", *arguments]
        with subprocess.Popen(command, cwd=REPOSITORY, env=environment) as pytest:
            try:
                status = pytest.wait()
            except KeyboardInterrupt:
                # Ctrl-C reached pytest too: let it finish its teardown (test database, servers).
                status = pytest.wait()
        if status == 5:
            print("tests/run.py: pytest collected no tests: failing the run", file=sys.stderr)
        return status
    finally:
        if not os.environ.get("LOUPE_KEEP_TEST_DATA"):
            shutil.rmtree(data_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            slot_lock.close()


def _redacted(url: str) -> str:
    """The URL without its password, for printing."""
    scheme, separator, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{separator}{credentials.split(':', 1)[0]}:***@{location}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
