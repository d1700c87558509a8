"""The embedded SQLite backend (config.embedded_sqlite): WAL with synchronous=FULL, and writers
queued on the `<database>.writer-lock` file.

The databases here have a short busy timeout, and a first writer holds its transaction well past
it: a second writer that waited in SQLite's busy loop instead of on the lock would fail with
"database is locked".
"""

import fcntl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections, transaction
from django.db.utils import ConnectionHandler

REPOSITORY = Path(__file__).resolve().parents[2]
ALIAS = "embedded_sqlite_test"
BUSY_TIMEOUT_SECONDS = 0.2
HOLD_SECONDS = 1.0  # how long a first writer keeps its transaction open while a second one waits
WAIT_SECONDS = 20.0  # the bound on waits for what must happen


@pytest.fixture
def database(tmp_path: Path, django_db_blocker) -> Iterator[Path]:
    """A database file of the test's own under `ALIAS`, with a table `item`."""
    path = tmp_path / "loupe.sqlite3"
    options = {"timeout": BUSY_TIMEOUT_SECONDS, "transaction_mode": "IMMEDIATE"}
    settings_dict = {"ENGINE": "config.embedded_sqlite", "NAME": str(path), "OPTIONS": options}
    connections.settings[ALIAS] = ConnectionHandler({"default": settings_dict}).settings["default"]
    try:
        with django_db_blocker.unblock():
            with connections[ALIAS].cursor() as cursor:
                cursor.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
            yield path
            connections[ALIAS].close()
    finally:
        del connections[ALIAS]
        del connections.settings[ALIAS]


def _insert(name: str) -> None:
    with connections[ALIAS].cursor() as cursor:
        cursor.execute("INSERT INTO item (name) VALUES (%s)", [name])


def _names() -> list[str]:
    with connections[ALIAS].cursor() as cursor:
        cursor.execute("SELECT name FROM item ORDER BY id")
        return [name for (name,) in cursor.fetchall()]


def _writer_lock_is_free(database: Path) -> bool:
    """Whether another open file of the lock file can take it now."""
    with open(f"{database}.writer-lock", "a") as other:
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(other, fcntl.LOCK_UN)
        return True


class Writer(threading.Thread):
    """Inserts `name` on a connection of its own: in `atomic`, or bare (autocommit)."""

    def __init__(self, name: str, *, in_atomic: bool) -> None:
        super().__init__(name=f"writer-{name}")
        self.row_name, self.in_atomic = name, in_atomic
        self.connected, self.finished = threading.Event(), threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            connections[ALIAS].ensure_connection()
            self.connected.set()
            if self.in_atomic:
                with transaction.atomic(using=ALIAS):
                    _insert(self.row_name)
            else:
                _insert(self.row_name)
        except BaseException as error:
            self.error = error
        finally:
            connections[ALIAS].close()
            self.finished.set()


def test_a_new_connection_is_in_wal_mode_with_full_sync(database):
    with connections[ALIAS].cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        journal_mode = cursor.fetchone()[0]
        cursor.execute("PRAGMA synchronous")
        synchronous = cursor.fetchone()[0]

    assert journal_mode == "wal"
    assert synchronous == 2  # FULL


@pytest.mark.parametrize("in_atomic", [True, False], ids=["atomic", "bare-insert"])
def test_a_second_writer_waits_for_the_first_to_commit_then_writes(database, in_atomic):
    with transaction.atomic(using=ALIAS):
        _insert("first")
        assert not _writer_lock_is_free(database)
        second = Writer("second", in_atomic=in_atomic)
        second.start()
        assert second.connected.wait(WAIT_SECONDS)

        assert not second.finished.wait(HOLD_SECONDS), second.error  # past the busy timeout

    assert second.finished.wait(WAIT_SECONDS)
    second.join()
    assert second.error is None
    assert _names() == ["first", "second"]
    assert _writer_lock_is_free(database)


class Abandoned(Exception):
    pass


def test_a_rollback_frees_the_writer_lock(database):
    with pytest.raises(Abandoned), transaction.atomic(using=ALIAS):
        _insert("abandoned")
        assert not _writer_lock_is_free(database)
        raise Abandoned

    assert _writer_lock_is_free(database)
    assert _names() == []


def test_closing_the_connection_in_a_transaction_frees_the_writer_lock(database):
    with transaction.atomic(using=ALIAS):
        _insert("lost with the connection")
        assert not _writer_lock_is_free(database)

        connections[ALIAS].close()

        assert _writer_lock_is_free(database)
    assert _names() == []


WRITER_PROCESS = """
import sys

import django
from django.conf import settings

settings.configure(DATABASES={"default": {
    "ENGINE": "config.embedded_sqlite",
    "NAME": sys.argv[1],
    "OPTIONS": {"timeout": float(sys.argv[2]), "transaction_mode": "IMMEDIATE"},
}})
django.setup()
from django.db import connection, transaction

connection.ensure_connection()
print("connected", flush=True)
with transaction.atomic(), connection.cursor() as cursor:
    cursor.execute("INSERT INTO item (name) VALUES (%s)", ["from another process"])
"""


def test_a_writer_in_another_process_waits_for_the_lock_too(database):
    with transaction.atomic(using=ALIAS):
        _insert("first")
        process = subprocess.Popen(
            [sys.executable, "-c", WRITER_PROCESS, str(database), str(BUSY_TIMEOUT_SECONDS)],
            cwd=REPOSITORY,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout.readline() == "connected\n", process.communicate(timeout=WAIT_SECONDS)
            with pytest.raises(subprocess.TimeoutExpired):
                process.wait(timeout=HOLD_SECONDS)  # past the busy timeout: still waiting, not failed
        except BaseException:
            process.kill()
            process.communicate()
            raise

    _, errors = process.communicate(timeout=WAIT_SECONDS)
    assert process.returncode == 0, errors
    assert _names() == ["first", "from another process"]
