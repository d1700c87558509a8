"""`manage.py retrain --station SLUG [--wait]`: queue a retraining of a station's model."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from inspection.models import Station
from labeling.snapshots import EmptySnapshot
from workers.models import TrainingJob, TrainingStatus, TrainingTrigger
from workers.retraining import training_job_request

POLL_SECONDS = 1.0


class Command(BaseCommand):
    help = (
        "Snapshot a station's data set and queue its retraining (a Celery worker runs it): train, "
        "evaluate against the champion on the frozen test split, gate, challenger in shadow."
    )

    def add_arguments(self, parser):
        parser.add_argument("--station", required=True, help="the station's slug")
        parser.add_argument(
            "--wait", action="store_true", help="follow the job's progress until it ends (needs a worker)"
        )
        parser.add_argument(
            "--timeout", type=float, default=0, help="with --wait: give up waiting after this many seconds"
        )

    def handle(self, *args, **options):
        station = Station.objects.filter(slug=options["station"]).first()
        if station is None:
            known = ", ".join(Station.objects.values_list("slug", flat=True)) or "none yet"
            raise CommandError(f"no station {options['station']!r} (stations: {known})")
        try:
            job, created = training_job_request(station=station, trigger=TrainingTrigger.COMMAND)
        except EmptySnapshot as error:
            raise CommandError(str(error)) from None
        if created:
            self.stdout.write(f"Training job {job.pk} queued on snapshot {job.snapshot}.")
        else:
            status = job.get_status_display()
            self.stdout.write(f"Nothing new to train: job {job.pk} on snapshot {job.snapshot} is {status}.")
        if options["wait"]:
            job = self._follow(job, options["timeout"])
        self._report(job)

    def _follow(self, job: TrainingJob, timeout: float) -> TrainingJob:
        deadline = time.monotonic() + timeout if timeout > 0 else None
        shown = None
        while job.active:
            line = _progress_line(job)
            if line != shown:
                self.stderr.write(line)
                shown = line
            if deadline is not None and time.monotonic() > deadline:
                raise CommandError(f"job {job.pk} still {job.status} after {timeout:g} s")
            time.sleep(POLL_SECONDS)
            job.refresh_from_db()
        return job

    def _report(self, job: TrainingJob) -> None:
        if job.active:
            return
        for reason in job.gate.get("reasons", []):
            self.stdout.write(f"  gate: {reason}")
        if job.status == TrainingStatus.FAILED:
            raise CommandError(f"job {job.pk} failed: {job.error}")
        candidate = f" ({job.candidate})" if job.candidate_id else ""
        style = self.style.SUCCESS if job.status == TrainingStatus.SHADOW else self.style.WARNING
        self.stdout.write(style(f"Job {job.pk}: {job.get_status_display()}{candidate}"))


def _progress_line(job: TrainingJob) -> str:
    if job.status == TrainingStatus.QUEUED:
        return f"job {job.pk}: queued, waiting for a worker"
    if job.steps and job.step >= job.steps:
        return f"job {job.pk}: trained; calibrating, evaluating against the champion"
    if not job.steps:
        return f"job {job.pk}: preparing (attempt {job.attempts})"
    loss = f", loss {job.loss:.3f}" if job.loss is not None else ""
    eta = f", ETA {job.eta_seconds:.0f} s" if job.eta_seconds is not None else ""
    return f"job {job.pk}: epoch {job.epoch}/{job.epochs}, step {job.step}/{job.steps}{loss}{eta}"
