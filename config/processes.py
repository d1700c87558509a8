"""The command line of each kind of Loupe process, written once.

`make run` (config.stack) starts these as its children on one machine; a deployment starts them
as services with `manage.py serve ROLE` (deploy/systemd/, deploy/compose.yaml,
deploy/local-production), which execs the same command. So what the tests and benchmarks start is
what a factory runs.

Roles:
- web: a uvicorn ASGI server (HTTP API, pages, WebSockets). Behind the TLS proxy it trusts the
  proxy's X-Forwarded-For/-Proto from `LOUPE_TRUSTED_PROXIES` only, so the client address that
  throttling and logs see is the line's or the person's, not the proxy's.
- worker: Celery for the default queue (webhooks, challenger predictions, checks, notifications).
- trainer: Celery for the training queue, one training at a time (`--pool solo`).
- beat: the one Celery beat of the installation (its schedule: workers/schedule.py).
- mlflow: the MLflow tracking server, with the backend store and artifact destination of
  `MLFLOW_BACKEND_STORE_URI` and `MLFLOW_ARTIFACTS_DESTINATION`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROLES = ("web", "worker", "trainer", "beat", "mlflow")


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
