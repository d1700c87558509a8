"""`manage.py dashboard_rollups [--rebuild]`: refresh the dashboard's rollups, or count them all
again from the rows (docs/operations.md, "Dashboard rollups")."""

import time

from django.core.management.base import BaseCommand

from inspection.supervision.dashboard.rollups import rollups_refresh


class Command(BaseCommand):
    help = (
        "Count the minutes closed and touched since the last refresh into the dashboard's rollups "
        "(Celery beat does it every few seconds); with --rebuild, count every minute again from the rows."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--rebuild", action="store_true", help="drop the rollups and count every minute from the rows"
        )

    def handle(self, *args, **options):
        started = time.monotonic()
        refreshed = rollups_refresh(rebuild=options["rebuild"])
        if refreshed.skipped:
            self.stdout.write("another refresh is running: nothing done")
            return
        done = "rebuilt" if options["rebuild"] else "refreshed"
        self.stdout.write(
            f"{done}: {refreshed.minutes_counted} minutes counted ({refreshed.touches} touches), "
            f"counted through minute {refreshed.counted_through}, in {time.monotonic() - started:.1f} s"
        )
