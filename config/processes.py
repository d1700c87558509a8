"""The command line of each kind of Loupe process, written once.

`make run` (config.stack) starts these as its children on one machine; a deployment starts them
as services with `manage.py serve ROLE` (deploy/systemd/, deploy/compose.yaml,
deploy/local-production), which execs the same command. So what the tests and benchmarks start is
what a factory runs.

Roles:
- web: a uvicorn ASGI server (HTTP API, pages, WebSockets), in as many processes as `web_layout()`
  says for this machine. Behind the TLS proxy it trusts the proxy's X-Forwarded-For/-Proto from
  `LOUPE_TRUSTED_PROXIES` only, so the client address that throttling and logs see is the line's
  or the person's, not the proxy's.
- worker: Celery for the default queue (webhooks, challenger predictions, checks, notifications).
- trainer: Celery for the training queue, one training at a time (`--pool solo`).
- beat: the one Celery beat of the installation (its schedule: workers/schedule.py).
- mlflow: the MLflow tracking server, with the backend store and artifact destination of
  `MLFLOW_BACKEND_STORE_URI` and `MLFLOW_ARTIFACTS_DESTINATION`.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from models_registry.ml.device import available_cores

ROLES = ("web", "worker", "trainer", "beat", "mlflow")
# prometheus_client's multiprocess mode: the folder where several web processes keep their counts.
MULTIPROCESS_DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class ProcessOptions:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    concurrency: int = 1
    # Proxies whose forwarded headers the web process believes (uvicorn's --forwarded-allow-ips).
    trusted_proxies: str = ""
    # Tells apart several workers of one queue on one host (their Celery node names).
    instance: str = ""
    python: str = sys.executable


@dataclass(frozen=True)
class WebLayout:
    """How the web role spreads over the machine's cores.

    - processes: uvicorn worker processes (each loads the models once);
    - line_threads: threads per process that run the line's POST /api/v1/units/ (config.line_http);
      one more than the process's cores, so one request's database and storage work overlaps
      the others' forwards;
    - inference_threads: ONNX Runtime threads a forward may spread over when it runs alone in its
      process (under load every forward runs on one thread, one per core: models_registry's
      OnnxPredictor).
    """

    cores: int
    processes: int
    line_threads: int
    inference_threads: int

    def describe(self) -> str:
        return (
            f"{self.cores} core(s): {self.processes} web process(es), {self.line_threads} line thread(s) "
            f"and up to {self.inference_threads} inference thread(s) each"
        )


def web_layout(environ: dict[str, str] | None = None, *, cores: int | None = None) -> WebLayout:
    """The layout for this machine: one web process per two cores (measured on 2 cores: one
    process with its forwards spread over both beat two single-threaded ones at 1 and 4 clients,
    and lost by at most 4 % at 16), overridden by LOUPE_WEB_PROCESSES, LOUPE_LINE_THREADS and
    LOUPE_INFERENCE_THREADS."""
    environ = os.environ if environ is None else environ
    cores = cores or available_cores()
    processes = _positive(environ, "LOUPE_WEB_PROCESSES") or max(1, cores // 2)
    share = max(1, cores // processes)
    return WebLayout(
        cores=cores,
        processes=processes,
        line_threads=_positive(environ, "LOUPE_LINE_THREADS") or share + 1,
        inference_threads=_positive(environ, "LOUPE_INFERENCE_THREADS") or share,
    )


def shared_metrics_prepare(layout: WebLayout, data_dir: Path, environ: dict[str, str]) -> None:
    """Several web processes share their HTTP counts through prometheus_client's files: point
    `environ` at a folder under `data_dir`, emptied (prometheus_client's rule at each start),
    unless it names one already."""
    if layout.processes > 1 and MULTIPROCESS_DIRECTORY_VARIABLE not in environ:
        directory = data_dir / "prometheus"
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        environ[MULTIPROCESS_DIRECTORY_VARIABLE] = str(directory)


def _positive(environ: dict[str, str], name: str) -> int | None:
    """A whole number ≥ 1 from the environment, None when unset or 0; anything else is an error
    that names the variable."""
    text = environ.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise ValueError(f"{name}={text!r}: expected a whole number of 1 or more (0 or unset: automatic)")
    return int(text) or None


def process_command(role: str, options: ProcessOptions) -> list[str]:
    from django.conf import settings

    python = options.python
    suffix = f"-{options.instance}" if options.instance else ""
    if role == "web":
        command = [
            python, "-m", "uvicorn", "config.asgi:application",
            "--host", options.host,
            "--port", str(options.port),
            "--lifespan", "off",
            "--timeout-graceful-shutdown", "5",
            "--no-server-header",
        ]  # fmt: skip
        processes = settings.WEB_LAYOUT.processes
        if processes > 1:
            command += ["--workers", str(processes)]
        if options.trusted_proxies:
            command += ["--proxy-headers", "--forwarded-allow-ips", options.trusted_proxies]
        else:
            command += ["--no-proxy-headers"]
        return command
    if role == "worker":
        return _celery_worker(
            python, settings.CELERY_TASK_DEFAULT_QUEUE, suffix, "--concurrency", str(options.concurrency)
        )
    if role == "trainer":
        # Trainings take minutes: their own worker, so webhooks and shadow predictions never wait
        # behind one.
        return _celery_worker(python, settings.LOUPE_TRAINING_QUEUE, suffix, "--pool", "solo")
    if role == "beat":
        return [
            python, "-m", "celery", "-A", "config", "beat",
            "--loglevel", "INFO",
            "--schedule", str(options.data_dir / "celerybeat-schedule"),
        ]  # fmt: skip
    if role == "mlflow":
        backend = os.environ.get("MLFLOW_BACKEND_STORE_URI", "")
        artifacts = os.environ.get("MLFLOW_ARTIFACTS_DESTINATION", "")
        if not backend or not artifacts:
            raise ValueError(
                "the mlflow role needs MLFLOW_BACKEND_STORE_URI (e.g. postgresql+psycopg://mlflow@db/mlflow) "
                "and MLFLOW_ARTIFACTS_DESTINATION (a folder or an object store URI)"
            )
        return [
            python, "-m", "mlflow", "server",
            "--backend-store-uri", backend,
            "--artifacts-destination", artifacts,
            "--serve-artifacts",
            "--host", options.host,
            "--port", str(options.port),
            "--workers", str(options.concurrency),
        ]  # fmt: skip
    raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")


def _celery_worker(python: str, queue: str, suffix: str, *options: str) -> list[str]:
    return [
        python, "-m", "celery", "-A", "config", "worker",
        "--loglevel", "INFO",
        "--queues", queue,
        "--hostname", f"{queue}{suffix}@%h",
        *options,
    ]  # fmt: skip
