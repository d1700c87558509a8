"""The production topology of deploy/, started whole on one machine: `deploy/local-production`.

The same processes a factory runs from deploy/systemd/ (nginx terminating TLS in front of several
uvicorn web processes, Celery workers for the default queue, one training worker, exactly one beat,
an MLflow tracking server on a PostgreSQL backend store with served artifacts) with the same command
lines (`manage.py serve ROLE`, `config.processes`), the same nginx configuration
(deploy/nginx/loupe.conf, filled in) and the production settings (`LOUPE_PRODUCTION=1`). PostgreSQL
and Redis are instances of its own, in a throwaway folder on free ports, never the machine's own
services: PostgreSQL initialised for the run, Redis with its append-only file on
(docs/operations.md says why the product needs it).

The slow topology test and the fault drills (bench/faults.py) use it as a context manager, and
kill, stop and start its processes one at a time::

    with LocalProduction() as topology:
        topology.url                      # https://localhost:PORT (self-signed: topology.certificate)
        topology.kill("web-1")            # SIGKILL, as a crash would
        topology.start("web-1")           # what the service manager's Restart=always does
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
NGINX_SITE = REPOSITORY / "deploy" / "nginx" / "loupe.conf"
SERVER_NAME = "localhost"
START_TIMEOUT_SECONDS = 120.0
STOP_GRACE_SECONDS = 10.0


class TopologyError(RuntimeError):
    """A process of the topology could not be started; the message names it and ends with its log."""


@dataclass
class Service:
    name: str
    command: list[str]
    environment: dict[str, str]
    log_path: Path
    user: str | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_binaries() -> Path:
    """The folder of Debian's PostgreSQL server binaries (initdb, postgres), newest major first."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    if candidates:
        return candidates[0].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise TopologyError(
        "PostgreSQL's server binaries (initdb, postgres) are not installed: apt-get install postgresql"
    )


class LocalProduction:
    """The whole topology in `root` (a new temporary folder by default, removed at the end)."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        web_processes: int = 2,
        workers: int = 2,
        media_limit_bytes: int | None = None,
        environment: dict[str, str] | None = None,
        keep: bool = False,
    ) -> None:
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="loupe-production-")).resolve()
        self.web_processes = web_processes
        self.workers = workers
        self.media_limit_bytes = media_limit_bytes
        self.keep = keep
        self.services: dict[str, Service] = {}
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="topology-spawner")
        self._media_mounted = False
        self.python = str(REPOSITORY / ".venv" / "bin" / "python")
        if not Path(self.python).exists():
            self.python = sys.executable
        self.ports = {
            "postgres": free_port(),
            "redis": free_port(),
            "mlflow": free_port(),
            "https": free_port(),
            "http": free_port(),
            **{f"web-{index}": free_port() for index in range(1, web_processes + 1)},
        }
        self.url = f"https://{SERVER_NAME}:{self.ports['https']}"
        self.certificate = self.root / "tls" / "loupe.crt"
        self.media_root = self.root / "media"
        self.data_dir = self.root / "data"
        self.database_url = f"postgres://postgres@127.0.0.1:{self.ports['postgres']}/loupe"
        self.redis_url = f"redis://127.0.0.1:{self.ports['redis']}/0"
        # `environment` adds to (or overrides) the settings every process of the topology reads.
        self.environment = {**self._loupe_environment(), **(environment or {})}

    # --- the whole ------------------------------------------------------------------------

    def __enter__(self) -> LocalProduction:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.down()

    def up(self) -> None:
        """Bring every process up in dependency order and wait until the proxy answers over HTTPS."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # PostgreSQL runs as its own user and must reach its folder
        for folder in (self.data_dir, self.media_root, self.root / "logs", self.root / "metrics"):
            folder.mkdir(parents=True, exist_ok=True)
        if self.media_limit_bytes:
            self._media_mount(self.media_limit_bytes)
        self._certificate_make()
        self._environment_file_write()

        self._postgres_define()
        self.start("postgres")
        self._wait(lambda: self._postgres_answers(), "postgres")
        self._postgres_create_databases()
        self._redis_define()
        self.start("redis")
        self._wait(lambda: self._redis_answers(), "redis")
        self._define("mlflow", "mlflow", port=self.ports["mlflow"])
        self.start("mlflow")
        self._wait(lambda: self._http_answers(f"http://127.0.0.1:{self.ports['mlflow']}/health"), "mlflow")

        self.manage("migrate", "--noinput")
        self.manage("collectstatic", "--noinput")
        for index in range(1, self.web_processes + 1):
            self._define(f"web-{index}", "web", port=self.ports[f"web-{index}"], trusted_proxies="127.0.0.1")
        for index in range(1, self.workers + 1):
            self._define(f"worker-{index}", "worker", instance=str(index))
        self._define("trainer", "trainer")
        self._define("beat", "beat")
        self._nginx_define()
        for name in self.services:
            if not self.services[name].running:
                self.start(name)
        for index in range(1, self.web_processes + 1):
            port = self.ports[f"web-{index}"]
            self._wait(
                lambda port=port: self._http_answers(f"http://127.0.0.1:{port}/api/v1/health"), f"web-{index}"
            )
        self._wait(lambda: self._http_answers(f"{self.url}/api/v1/health"), "nginx")

    def down(self) -> None:
        """Stop everything, the front first and the stores last, and remove the folder."""
        for name in reversed(list(self.services)):
            self.stop(name)
        if self._media_mounted:
            subprocess.run(["umount", "--lazy", str(self.media_root)], check=False)
            self._media_mounted = False
        if self._own_root and not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        self._spawner.shutdown()

    # --- one process at a time --------------------------------------------------------------

    def start(self, name: str) -> None:
        from config.embedded import die_with_parent

        service = self.services[name]
        if service.running:
            return
        # Forked from the spawner thread, whoever asks: a child started from a short-lived thread
        # (a fault drill's) would get its parent-death signal when that thread ends.
        self._spawner.submit(self._spawn, service, die_with_parent).result()

    def _spawn(self, service: Service, die_with_parent) -> None:
        with open(service.log_path, "ab") as log:
            service.process = subprocess.Popen(
                service.command,
                cwd=REPOSITORY,
                env=service.environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
                user=service.user,
            )

    def stop(self, name: str, *, timeout: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM to the process group (a clean shutdown), SIGKILL after `timeout`."""
        service = self.services[name]
        if not service.running:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.process.pid, signal.SIGTERM)
        try:
            service.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(name)

    def kill(self, name: str) -> None:
        """SIGKILL the process group at once, as a crash or the OOM killer would."""
        service = self.services[name]
        if service.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.process.pid, signal.SIGKILL)
        service.process.wait()

    def wait_serving(self, name: str, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Until the named process answers again (after a `start`)."""
        checks = {
            "postgres": self._postgres_answers,
            "redis": self._redis_answers,
            "mlflow": lambda: self._http_answers(f"http://127.0.0.1:{self.ports['mlflow']}/health"),
            "nginx": lambda: self._http_answers(f"{self.url}/api/v1/health"),
        }
        if name.startswith("web-"):
            checks[name] = lambda: self._http_answers(f"http://127.0.0.1:{self.ports[name]}/api/v1/health")
        self._wait(checks.get(name, lambda: self.services[name].running), name, timeout=timeout)

    def manage(self, *arguments: str, environment: dict[str, str] | None = None) -> str:
        """`manage.py ARGUMENTS` against this topology; its output, or TopologyError with it."""
        completed = subprocess.run(
            [self.python, "manage.py", *arguments],
            cwd=REPOSITORY,
            env={**self.environment, **(environment or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if completed.returncode != 0:
            raise TopologyError(
                f"manage.py {' '.join(arguments)} failed ({completed.returncode}):\n"
                f"{completed.stdout[-2000:]}{completed.stderr[-4000:]}"
            )
        return completed.stdout

    def log(self, name: str) -> str:
        return self.services[name].log_path.read_text(errors="replace")

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.certificate))

    # --- definitions ---------------------------------------------------------------------------

    def _loupe_environment(self) -> dict[str, str]:
        """What deploy/loupe.env.example holds, for this topology (and nothing of the caller's Loupe
        settings, so that a developer's shell cannot change what is tested)."""
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("LOUPE_", "DJANGO_", "MLFLOW_", "DATABASE_URL", "REDIS_URL", "CELERY_"))
        }
        postgres = f"127.0.0.1:{self.ports['postgres']}"
        return {
            **inherited,
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "LOUPE_PRODUCTION": "1",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": f"{SERVER_NAME},127.0.0.1",
            "LOUPE_PUBLIC_URL": self.url,
            "DJANGO_CSRF_TRUSTED_ORIGINS": self.url,
            "LOUPE_BEHIND_TLS_PROXY": "1",
            "LOUPE_TRUSTED_PROXIES": "127.0.0.1",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{self.ports['mlflow']}",
            "MLFLOW_BACKEND_STORE_URI": f"postgresql+psycopg://postgres@{postgres}/mlflow",
            "MLFLOW_ARTIFACTS_DESTINATION": str(self.root / "mlflow-artifacts"),
            "LOUPE_DATA_DIR": str(self.data_dir),
            "LOUPE_MEDIA_ROOT": str(self.media_root),
            "PROMETHEUS_MULTIPROC_DIR": str(self.root / "metrics"),
            # One core each: the processes share this machine's few.
            "LOUPE_INFERENCE_THREADS": os.environ.get("LOUPE_INFERENCE_THREADS", "1"),
        }

    def _environment_file_write(self) -> None:
        path = self.root / "loupe.env"
        names = [name for name in self.environment if name.startswith(("LOUPE_", "DJANGO_", "MLFLOW_"))]
        names += ["DATABASE_URL", "REDIS_URL"]
        path.write_text("".join(f"{name}={self.environment[name]}\n" for name in names))
        path.chmod(0o600)

    def _define(self, name: str, role: str, **options) -> None:
        arguments = ["manage.py", "serve", role]
        for option, value in options.items():
            arguments += [f"--{option.replace('_', '-')}", str(value)]
        self.services[name] = Service(
            name, [self.python, *arguments], self.environment, self.root / "logs" / f"{name}.log"
        )

    def _postgres_define(self) -> None:
        binaries = postgres_binaries()
        data = self.root / "postgres"
        user = "postgres" if os.geteuid() == 0 else None  # PostgreSQL refuses to run as root
        if not data.exists():
            data.mkdir()
            if user:
                shutil.chown(data, user, user)
            completed = subprocess.run(
                [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"],
                capture_output=True,
                text=True,
                user=user,
            )
            if completed.returncode != 0:
                raise TopologyError(f"initdb failed:\n{completed.stdout}{completed.stderr}")
        self.services["postgres"] = Service(
            "postgres",
            [
                str(binaries / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.ports["postgres"]),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={data}",
                "-c",
                "max_connections=200",
                "-c",
                "fsync=on",
            ],  # fmt: skip
            {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"},
            self.root / "logs" / "postgres.log",
            user=user,
        )

    def _postgres_create_databases(self) -> None:
        import psycopg

        with psycopg.connect(self._postgres_dsn("postgres"), autocommit=True) as connection:
            for name in ("loupe", "mlflow"):
                exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
                if not exists:
                    connection.execute(f'CREATE DATABASE "{name}"')

    def _redis_define(self) -> None:
        from config.embedded import redis_server_executable

        executable = shutil.which("redis-server") or str(redis_server_executable())
        data = self.root / "redis"
        data.mkdir(exist_ok=True)
        self.services["redis"] = Service(
            "redis",
            [
                executable,
                "--port",
                str(self.ports["redis"]),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(data),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--daemonize",
                "no",
            ],  # fmt: skip
            {"PATH": os.environ.get("PATH", "")},
            self.root / "logs" / "redis.log",
        )

    def _nginx_define(self) -> None:
        executable = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(executable).exists():
            raise TopologyError("nginx is not installed: apt-get install nginx (Debian's package)")
        folder = self.root / "nginx"
        folder.mkdir(exist_ok=True)
        upstreams = "\n    ".join(
            f"server 127.0.0.1:{self.ports[f'web-{index}']} max_fails=1 fail_timeout=2s;"
            for index in range(1, self.web_processes + 1)
        )
        # The comment lines name the placeholders too: only the directives are filled in.
        site = "".join(
            line
            for line in NGINX_SITE.read_text().splitlines(keepends=True)
            if not line.lstrip().startswith("#")
        )
        for placeholder, value in {
            "@SERVER_NAME@": f"{SERVER_NAME} 127.0.0.1",
            "@HTTP_PORT@": f"127.0.0.1:{self.ports['http']}",
            "@HTTPS_PORT@": f"127.0.0.1:{self.ports['https']}",
            "@TLS_CERTIFICATE@": str(self.certificate),
            "@TLS_CERTIFICATE_KEY@": str(self.root / "tls" / "loupe.key"),
            "@STATIC_ROOT@": str(self.data_dir / "staticfiles"),
            "@UPSTREAM_SERVERS@": upstreams,
        }.items():
            site = site.replace(placeholder, value)
        # The redirect names the public port, not the listen address.
        site = site.replace(
            f"https://$host:127.0.0.1:{self.ports['https']}", f"https://$host:{self.ports['https']}"
        )
        (folder / "loupe.conf").write_text(site)
        temporary = {name: folder / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        for path in temporary.values():
            path.mkdir(exist_ok=True)
        (folder / "nginx.conf").write_text(
            "\n".join(
                [
                    "user root;" if os.geteuid() == 0 else "",
                    "worker_processes 1;",
                    f"pid {folder / 'nginx.pid'};",
                    f"error_log {self.root / 'logs' / 'nginx-error.log'} warn;",
                    "events { worker_connections 1024; }",
                    "http {",
                    "    include /etc/nginx/mime.types;",
                    f"    access_log {self.root / 'logs' / 'nginx-access.log'};",
                    f"    client_body_temp_path {temporary['body']};",
                    f"    proxy_temp_path {temporary['proxy']};",
                    f"    fastcgi_temp_path {temporary['fastcgi']};",
                    f"    uwsgi_temp_path {temporary['uwsgi']};",
                    f"    scgi_temp_path {temporary['scgi']};",
                    f"    include {folder / 'loupe.conf'};",
                    "}",
                    "",
                ]
            )
        )
        self.services["nginx"] = Service(
            "nginx",
            [executable, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"],
            {"PATH": os.environ.get("PATH", "")},
            self.root / "logs" / "nginx.log",
        )

    def _certificate_make(self) -> None:
        folder = self.root / "tls"
        folder.mkdir(exist_ok=True)
        if self.certificate.exists():
            return
        completed = subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "7",
                "-keyout",
                str(folder / "loupe.key"),
                "-out",
                str(self.certificate),
                "-subj",
                f"/CN={SERVER_NAME}",
                "-addext",
                f"subjectAltName=DNS:{SERVER_NAME},IP:127.0.0.1",
            ],  # fmt: skip
            capture_output=True,
            text=True,
        )
        if completed.returncode != 0:
            raise TopologyError(f"openssl could not make the self-signed certificate:\n{completed.stderr}")

    def _media_mount(self, size_bytes: int) -> None:
        """Media on a filesystem of its own with a size limit, for the full-disk drill."""
        completed = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(self.media_root)],
            capture_output=True,
            text=True,
        )
        if completed.returncode != 0:
            raise TopologyError(f"could not mount a {size_bytes}-byte media filesystem: {completed.stderr}")
        self._media_mounted = True

    # --- readiness -------------------------------------------------------------------------------

    def _wait(self, answers, name: str, *, timeout: float = START_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            service = self.services.get(name)
            if service is not None and service.process is not None and service.process.poll() is not None:
                raise TopologyError(
                    f"{name} exited with {service.process.returncode}:\n{self.log(name)[-4000:]}"
                )
            if answers():
                return
            time.sleep(0.2)
        tail = self.log(name)[-4000:] if name in self.services else ""
        raise TopologyError(f"{name} did not answer within {timeout:.0f} s:\n{tail}")

    def _postgres_dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.ports['postgres']}/{database}"

    def _postgres_answers(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self._postgres_dsn("postgres"), connect_timeout=2) as connection:
                connection.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def _redis_answers(self) -> bool:
        import redis

        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def _http_answers(self, url: str) -> bool:
        """Any HTTP answer but the proxy's 502: health is 503 while no model is active, and a web
        process asked over plain HTTP may redirect to HTTPS; either way it serves."""
        handlers = [_NoRedirects()]
        if url.startswith("https://"):
            handlers.append(urllib.request.HTTPSHandler(context=self.tls_context()))
        try:
            with urllib.request.build_opener(*handlers).open(url, timeout=2):
                return True
        except urllib.error.HTTPError as error:
            return error.code not in (502, 504)
        except (urllib.error.URLError, OSError):
            return False


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def main(arguments: list[str] | None = None) -> int:
    """`deploy/local-production [up] [options]` runs the topology in the foreground until Ctrl-C or
    `deploy/local-production down`; `--demo` also trains the starter model and makes its station."""
    import argparse

    parser = argparse.ArgumentParser(prog="deploy/local-production", description=main.__doc__)
    parser.add_argument("action", nargs="?", choices=("up", "down"), default="up")
    parser.add_argument("--web", type=int, default=2, help="web processes behind nginx (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="default-queue Celery workers (default 2)")
    parser.add_argument(
        "--dir", type=Path, help="keep everything in this folder (default: a temporary one, removed)"
    )
    parser.add_argument(
        "--demo", action="store_true", help="train the starter model and make the demo station"
    )
    options = parser.parse_args(arguments)
    pid_file = REPOSITORY / "var" / "local-production.pid"
    if options.action == "down":
        if not pid_file.exists():
            print("deploy/local-production: no topology is running from this checkout")
            return 1
        os.kill(int(pid_file.read_text()), signal.SIGTERM)
        print("deploy/local-production: asked it to stop")
        return 0

    def stop_requested(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_requested)
    pid_file.parent.mkdir(exist_ok=True)
    pid_file.write_text(str(os.getpid()))
    try:
        print("deploy/local-production: starting PostgreSQL, Redis, MLflow, web, workers, beat and nginx ...")
        with LocalProduction(options.dir, web_processes=options.web, workers=options.workers) as topology:
            if options.demo:
                print("deploy/local-production: training the starter model (a few minutes) ...")
                topology.manage("ensure_demo", "--count", "160", "--epochs", "4")
            print(f"Loupe is up at {topology.url} (self-signed certificate: {topology.certificate})")
            print(topology.manage("first_run_link", "--base-url", topology.url).strip())
            print(f"Everything lives in {topology.root}; the logs in {topology.root / 'logs'}.")
            print("Ctrl-C or `deploy/local-production down` stops it all.")
            while all(service.running for service in topology.services.values()):
                time.sleep(1)
            stopped = [name for name, service in topology.services.items() if not service.running]
            print(f"deploy/local-production: {', '.join(stopped)} stopped; stopping the rest")
            return 1
    except KeyboardInterrupt:
        print("deploy/local-production: stopped")
        return 0
    except TopologyError as error:
        print(f"deploy/local-production: {error}", file=sys.stderr)
        return 1
    finally:
        pid_file.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
