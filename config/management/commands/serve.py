"""`python manage.py serve ROLE`: become one Loupe process of a deployment (see `config.processes`).

The service files in deploy/ run this, so a deployment's processes are started with the very
command lines `make run` uses. It replaces itself with the process (exec), so that the service
manager's signals reach uvicorn, Celery or MLflow directly.
"""

import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.processes import ROLES, ProcessOptions, process_command, shared_metrics_prepare


class Command(BaseCommand):
    help = "Run one Loupe process: web (uvicorn), worker, trainer, beat (Celery) or mlflow (tracking server)."

    def add_arguments(self, parser):
        parser.add_argument("role", choices=ROLES)
        parser.add_argument("--host", default=os.environ.get("LOUPE_BIND_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument(
            "--concurrency",
            type=int,
            default=int(os.environ.get("LOUPE_WORKER_CONCURRENCY", "1")),
            help="Celery worker processes, or MLflow server workers (default LOUPE_WORKER_CONCURRENCY or 1).",
        )
        parser.add_argument(
            "--trusted-proxies",
            default=os.environ.get("LOUPE_TRUSTED_PROXIES", ""),
            help="Comma-separated addresses of the reverse proxies whose X-Forwarded-* headers the web "
            "process believes (default: LOUPE_TRUSTED_PROXIES; empty: none).",
        )
        parser.add_argument(
            "--instance",
            default=os.environ.get("LOUPE_INSTANCE", ""),
            help="A name telling apart several workers of one queue on one host (default: LOUPE_INSTANCE).",
        )

    def handle(self, *args, role, host, port, concurrency, trusted_proxies, instance, **options):
        try:
            command = process_command(
                role,
                ProcessOptions(
                    data_dir=settings.LOUPE_DATA_DIR,
                    host=host,
                    port=port,
                    concurrency=concurrency,
                    trusted_proxies=trusted_proxies,
                    instance=instance,
                ),
            )
        except ValueError as error:
            raise CommandError(str(error)) from error
        if role == "web":
            layout = settings.WEB_LAYOUT
            self.stdout.write(f"web layout for {layout.describe()}")
            self.stdout.flush()
            shared_metrics_prepare(layout, settings.LOUPE_DATA_DIR, os.environ)
        os.chdir(settings.BASE_DIR)
        os.execv(command[0], command)
