"""Django's SQLite backend with WAL, durable commits, and writers queued on `<database>.writer-lock`
(an `flock` per connection) instead of SQLite's sleep-and-retry busy loop, which stays as the
fallback for writers that bypass the lock. Why, and the one wait that never ends: docs/operations.md,
"The embedded database under load".
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from django.db.backends.sqlite3 import base as sqlite3

# What Django sends outside `atomic` that writes: a bare `save()`, `QuerySet.update()`, a delete
# without cascades. Each is its own implicit transaction.
WRITE_STATEMENT = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
# With these, BEGIN takes SQLite's write lock at once, so every atomic block is a write; with
# DEFERRED a block may only read, and queueing it would serialize readers that WAL lets run together.
WRITING_TRANSACTION_MODES = {"IMMEDIATE", "EXCLUSIVE"}


class DatabaseWrapper(sqlite3.DatabaseWrapper):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._writer_lock_file: IO | None = None
        self._writer_lock_pid: int | None = None
        self._holds_writer_lock = False

    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        connection.execute("PRAGMA journal_mode=WAL")
        # WAL's usual synchronous=NORMAL can lose the last commits on power loss; FULL syncs the
        # WAL at each commit, so what was committed before the answer survives it.
        connection.execute("PRAGMA synchronous=FULL")
        return connection

    def create_cursor(self, name=None):
        cursor = self.connection.cursor(factory=QueuedWriteCursor)
        cursor.writer_lock = self._writer_lock_for_statement
        return cursor

    def _start_transaction_under_autocommit(self) -> None:
        """`atomic` begins here (BEGIN IMMEDIATE): take the writer lock just before."""
        if self.transaction_mode not in WRITING_TRANSACTION_MODES:
            super()._start_transaction_under_autocommit()
            return
        self._writer_lock_acquire()
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._writer_lock_release()
            raise

    def _commit(self):
        try:
            return super()._commit()
        finally:
            # If the commit failed with the transaction still open, Django's `atomic` rolls back
            # or closes next; SQLite's own lock and busy timeout keep order meanwhile.
            self._writer_lock_release()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._writer_lock_release()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._writer_lock_release()
            if self._writer_lock_file is not None:
                self._writer_lock_file.close()
                self._writer_lock_file = None

    @contextmanager
    def _writer_lock_for_statement(self) -> Iterator[None]:
        """Around a write in autocommit mode (outside any transaction)."""
        if self._holds_writer_lock:
            yield
            return
        self._writer_lock_acquire()
        try:
            yield
        finally:
            self._writer_lock_release()

    def _writer_lock_path(self) -> str | None:
        name = str(self.settings_dict["NAME"])
        if self.is_in_memory_db() or name.startswith("file:"):
            return None
        return f"{name}.writer-lock"

    def _writer_lock_acquire(self) -> None:
        if self._holds_writer_lock and self._writer_lock_pid == os.getpid():
            return
        path = self._writer_lock_path()
        if path is None:
            return
        if self._writer_lock_pid != os.getpid():
            # A connection inherited through fork shares its parent's open file, and with it the
            # parent's lock: the child opens its own.
            self._writer_lock_file = None
            self._holds_writer_lock = False
        if self._writer_lock_file is None:
            self._writer_lock_file = open(path, "a")  # kept open for the connection's life
            self._writer_lock_pid = os.getpid()
        fcntl.flock(self._writer_lock_file, fcntl.LOCK_EX)
        self._holds_writer_lock = True

    def _writer_lock_release(self) -> None:
        if not self._holds_writer_lock or self._writer_lock_pid != os.getpid():
            return
        self._holds_writer_lock = False
        fcntl.flock(self._writer_lock_file, fcntl.LOCK_UN)


class QueuedWriteCursor(sqlite3.SQLiteCursorWrapper):
    """Takes the writer lock around a write statement sent outside a transaction.

    An INSERT ... RETURNING (a bare `save()`) keeps SQLite's write lock until its row is read, just
    after `execute` returns: a writer woken in between meets the busy timeout's first 1 ms sleep."""

    writer_lock = None  # the connection's `_writer_lock_for_statement`

    def execute(self, query, params=None):
        if self.connection.in_transaction or not WRITE_STATEMENT.match(query):
            return super().execute(query, params)
        with self.writer_lock():
            return super().execute(query, params)

    def executemany(self, query, param_list):
        if self.connection.in_transaction or not WRITE_STATEMENT.match(query):
            return super().executemany(query, param_list)
        with self.writer_lock():
            return super().executemany(query, param_list)
