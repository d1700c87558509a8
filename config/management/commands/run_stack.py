"""`python manage.py run_stack`: Loupe on one machine, in the foreground (see `config.stack`)."""

import os

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from config.accounts import sign_in_hint
from config.stack import StackOptions, run_stack


class Command(BaseCommand):
    help = (
        "Run Loupe in the foreground: the embedded Redis (when REDIS_URL is unset), the web server, "
        "a Celery worker and Celery beat. Migrates and prepares the demo model first."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument(
            "--concurrency",
            type=int,
            default=int(os.environ.get("LOUPE_WORKER_CONCURRENCY", "1")),
            help="Celery worker processes (default: LOUPE_WORKER_CONCURRENCY or 1).",
        )
        parser.add_argument(
            "--skip-demo", action="store_true", help="Do not run ensure_demo before starting."
        )

    def handle(self, *args, host, port, concurrency, skip_demo, **options):
        stack_options = StackOptions(
            data_dir=settings.LOUPE_DATA_DIR,
            host=host,
            port=port,
            worker_concurrency=concurrency,
            embedded_redis=settings.EMBEDDED_REDIS,
        )
        link_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        exit_code = run_stack(
            stack_options,
            prepare=lambda: self._prepare(skip_demo=skip_demo, base_url=f"http://{link_host}:{port}"),
            cwd=settings.BASE_DIR,
        )
        if exit_code:
            raise CommandError("The stack stopped because one of its processes exited.", returncode=exit_code)

    def _prepare(self, *, skip_demo: bool, base_url: str) -> str:
        call_command("migrate", interactive=False, verbosity=1)
        call_command("collectstatic", interactive=False, verbosity=0)
        if skip_demo:
            self.stdout.write("[stack] --skip-demo: not running ensure_demo")
        else:
            call_command("ensure_demo")
        return sign_in_hint(base_url)
