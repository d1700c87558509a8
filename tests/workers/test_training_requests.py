"""Asking for a retraining: one job per snapshot, one active job per station, the label-count and
schedule triggers, the stale-job sweep and `manage.py retrain` (no training runs here)."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from labeling.snapshots import EmptySnapshot, dataset_snapshot_create
from labeling.station_data import station_dataset_get
from tests.workers.conftest import units_judge
from workers.models import TrainingJob, TrainingSettings, TrainingStatus, TrainingTrigger
from workers.retraining import (
    labels_since_last_training,
    retraining_due,
    training_job_request,
    training_job_run,
    training_jobs_stale_requeue,
    training_triggers_sweep,
)

pytestmark = pytest.mark.django_db


def test_a_repeat_request_on_unchanged_data_returns_the_same_job(labelled_station):
    station = labelled_station(units=6)
    job, created = training_job_request(station=station, trigger=TrainingTrigger.ADMIN)
    assert created and job.status == TrainingStatus.QUEUED and job.snapshot.dataset.station == station

    # while it is queued, and after it ended, the same data gives the same job
    assert training_job_request(station=station, trigger=TrainingTrigger.ADMIN) == (job, False)
    TrainingJob.objects.filter(pk=job.pk).update(status=TrainingStatus.REJECTED)
    assert training_job_request(station=station, trigger=TrainingTrigger.LABELS) == (job, False)
    assert TrainingJob.objects.count() == 1


def test_new_labels_make_a_new_job_once_the_last_one_ended(labelled_station, inspector):
    station = labelled_station(units=6)
    first, _ = training_job_request(station=station, trigger=TrainingTrigger.ADMIN)
    units_judge(station, 2, inspector=inspector, seed=1)

    # the station's job is still queued: no second one
    assert training_job_request(station=station, trigger=TrainingTrigger.ADMIN) == (first, False)

    TrainingJob.objects.filter(pk=first.pk).update(status=TrainingStatus.SHADOW)
    second, created = training_job_request(station=station, trigger=TrainingTrigger.ADMIN)
    assert created and second != first
    assert second.snapshot.version == first.snapshot.version + 1


def test_the_database_allows_one_active_job_per_station(labelled_station, inspector):
    station = labelled_station(units=6)
    first, _ = training_job_request(station=station, trigger=TrainingTrigger.ADMIN)
    units_judge(station, 2, inspector=inspector, seed=1)
    newer = dataset_snapshot_create(dataset=station_dataset_get(station=station))
    fields = {"station": station, "trigger": TrainingTrigger.ADMIN, "labels_as_of": timezone.now()}

    with pytest.raises(IntegrityError), transaction.atomic():
        TrainingJob.objects.create(snapshot=newer, status=TrainingStatus.RUNNING, **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        TrainingJob.objects.create(snapshot=first.snapshot, status=TrainingStatus.FAILED, **fields)
    # a finished job next to the active one is fine
    TrainingJob.objects.create(snapshot=newer, status=TrainingStatus.REJECTED, **fields)


def test_a_person_asking_again_requeues_a_failed_job_but_a_trigger_does_not(labelled_station):
    station = labelled_station(units=6)
    job, _ = training_job_request(station=station, trigger=TrainingTrigger.LABELS)
    TrainingJob.objects.filter(pk=job.pk).update(status=TrainingStatus.FAILED, attempts=3, error="boom")

    assert training_job_request(station=station, trigger=TrainingTrigger.SCHEDULE) == (job, False)
    again, created = training_job_request(station=station, trigger=TrainingTrigger.COMMAND)
    assert created and again.pk == job.pk
    assert again.status == TrainingStatus.QUEUED and again.attempts == 0 and again.trigger == "command"


def test_nothing_labelled_means_nothing_to_train(make_station):
    station = make_station()
    with pytest.raises(EmptySnapshot):
        training_job_request(station=station, trigger=TrainingTrigger.ADMIN)
    assert training_triggers_sweep() == []


def test_the_label_count_trigger(labelled_station, inspector):
    station = labelled_station(units=4, retrain_after_labels=5)
    assert labels_since_last_training(station=station) == 4
    assert retraining_due(station=station) is None

    units_judge(station, 1, inspector=inspector, seed=1)
    assert retraining_due(station=station) == TrainingTrigger.LABELS
    [job] = training_triggers_sweep()
    assert job.trigger == TrainingTrigger.LABELS and job.snapshot.counts["train"] >= 1

    # the count starts again from the data the job read, and waits while a job is active
    TrainingJob.objects.filter(pk=job.pk).update(status=TrainingStatus.SHADOW)
    assert labels_since_last_training(station=station) == 0
    units_judge(station, 5, inspector=inspector, seed=2)
    assert labels_since_last_training(station=station) == 5
    assert retraining_due(station=station) == TrainingTrigger.LABELS
    TrainingJob.objects.filter(pk=job.pk).update(status=TrainingStatus.RUNNING)
    assert retraining_due(station=station) is None

    # 0 turns the trigger off
    TrainingJob.objects.filter(pk=job.pk).update(status=TrainingStatus.SHADOW)
    TrainingSettings.of(station).retrain_after_labels = 0
    assert retraining_due(station=station) is None


def test_the_schedule_trigger_needs_changed_labels(labelled_station, inspector):
    station = labelled_station(units=4, retrain_after_labels=0, retrain_every_hours=6)
    [job] = training_triggers_sweep()  # labels and no training yet
    assert job.trigger == TrainingTrigger.SCHEDULE
    TrainingJob.objects.filter(pk=job.pk).update(status=TrainingStatus.REJECTED)

    now = timezone.now()
    units_judge(station, 1, inspector=inspector, seed=1)
    assert retraining_due(station=station, now=now + timedelta(hours=5)) is None
    assert retraining_due(station=station, now=now + timedelta(hours=7)) == TrainingTrigger.SCHEDULE

    # no label changed since the last job: nothing to retrain on, whatever the time
    TrainingJob.objects.filter(pk=job.pk).update(labels_as_of=now + timedelta(hours=1))
    assert retraining_due(station=station, now=now + timedelta(hours=7)) is None


def test_a_job_whose_worker_went_silent_is_queued_again_then_failed(labelled_station, settings):
    station = labelled_station(units=6)
    job, _ = training_job_request(station=station, trigger=TrainingTrigger.ADMIN)
    silent = timezone.now() - timedelta(seconds=settings.LOUPE_TRAINING_STALE_SECONDS + 1)

    # a beating worker holds the job: nobody else takes it, the sweep leaves it alone
    TrainingJob.objects.filter(pk=job.pk).update(
        status=TrainingStatus.RUNNING, attempts=1, heartbeat_at=timezone.now()
    )
    assert training_jobs_stale_requeue() == []
    assert training_job_run(job=job).attempts == 1

    TrainingJob.objects.filter(pk=job.pk).update(heartbeat_at=silent)
    assert training_jobs_stale_requeue() == [job]
    job.refresh_from_db()
    assert job.status == TrainingStatus.QUEUED and "attempt 1: no heartbeat" in job.error

    TrainingJob.objects.filter(pk=job.pk).update(
        status=TrainingStatus.RUNNING, attempts=settings.LOUPE_TRAINING_MAX_ATTEMPTS, heartbeat_at=silent
    )
    training_jobs_stale_requeue()
    job.refresh_from_db()
    assert job.status == TrainingStatus.FAILED and "gave up after" in job.error and job.finished_at


def test_a_queued_job_nobody_took_is_sent_again(labelled_station, settings):
    station = labelled_station(units=6)
    job, _ = training_job_request(station=station, trigger=TrainingTrigger.ADMIN)
    assert training_jobs_stale_requeue() == []
    later = timezone.now() + timedelta(seconds=settings.LOUPE_TRAINING_RESEND_SECONDS + 1)
    assert training_jobs_stale_requeue(now=later) == [job]
    assert training_jobs_stale_requeue(now=later) == []  # sent once per period


def test_the_retrain_command(labelled_station):
    station = labelled_station(units=6)
    output = StringIO()
    call_command("retrain", "--station", station.slug, stdout=output)
    job = TrainingJob.objects.get()
    assert f"Training job {job.pk} queued" in output.getvalue()
    assert job.trigger == TrainingTrigger.COMMAND and job.requested_by is None

    output = StringIO()
    call_command("retrain", "--station", station.slug, stdout=output)
    assert f"Nothing new to train: job {job.pk}" in output.getvalue()
    with pytest.raises(CommandError, match="no station 'nope'"):
        call_command("retrain", "--station", "nope")
