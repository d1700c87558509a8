"""Retraining for real, at toy scale: through a Celery worker into MLflow, the gate both ways, and
recovery from a worker killed mid-training (never a half-registered version)."""

import asyncio
import contextlib
import os
import signal
import threading
import time
from io import StringIO

import pytest
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.management import call_command
from mlflow.tracking import MlflowClient

from inspection.events import station_group
from inspection.models import StationChange
from inspection.services.decisions import decision_record
from inspection.services.stations import station_update
from inspection.services.units import unit_submit
from labeling.models import Split
from labeling.snapshots import snapshot_samples
from labeling.station_data import station_dataset_get
from models_registry import mlflow_registry
from models_registry.ml.serving.bundle import read_config
from models_registry.models import ModelVersion
from tests.conftest import stop_test_process
from tests.inspection.factories import jpeg_bytes
from tests.workers.conftest import job_done, job_wait, retraining_settings, worker_start
from workers.models import TrainingJob, TrainingStatus, TrainingTrigger
from workers.retraining import (
    JOB_TAG,
    station_model_name,
    training_job_request,
    training_job_run,
    training_jobs_stale_requeue,
)

# workers and after-commit work see the rows; a channel layer of the test's own (tests/conftest.py)
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("channel_layer")]


class StationEvents:
    """A subscriber of a station's channel group, recording what it receives from a thread of
    its own (so nothing expires in the channel layer while the test waits). It receives without
    a timeout: a receive cancelled mid-read can lose the message it was reading (redis-py shields
    the blocking pop), so the one cancellation is at the end."""

    def __init__(self, slug: str):
        self.slug, self.events = slug, []
        self.subscribed = threading.Event()
        self.changed = threading.Condition()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)

    def __enter__(self) -> "StationEvents":
        self.thread.start()
        assert self.subscribed.wait(10), "could not subscribe to the station's events"
        return self

    def __exit__(self, *exc_info) -> None:
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)

    def wait_until(self, done, timeout: float) -> bool:
        """Wait until `done(events)` holds for the events received so far."""
        with self.changed:
            return self.changed.wait_for(lambda: done(self.events), timeout)

    async def _listen(self) -> None:
        self.loop, self.task = asyncio.get_running_loop(), asyncio.current_task()
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(station_group(self.slug), channel)
        self.subscribed.set()
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                message = await layer.receive(channel)
                with self.changed:
                    self.events.extend(message["events"])
                    self.changed.notify_all()


def job_finished_event(events: list[dict]) -> bool:
    """The worker's last event of a job: its final status (published after the row changed)."""
    return any(
        event["type"] == "training.status" and event["job"]["status"] not in {"queued", "running"}
        for event in events
    )


def mlflow_runs_of(job: TrainingJob) -> list[mlflow_registry.RunState]:
    return mlflow_registry.runs_tagged(key=JOB_TAG, value=str(job.uuid))


def test_a_retraining_runs_in_a_worker_into_mlflow_and_the_candidate_goes_into_shadow(
    tiny_retraining, live_celery_worker, labelled_station
):
    # a station with a champion, 36 units judged by an inspector, and a gate that only asks the
    # candidate to cover as much as the champion (AUROC may drop: toy models rank at random)
    station = labelled_station(slug="line-a", units=36, gate_auroc_margin=1.0)
    champion = station.champion

    output = StringIO()
    with StationEvents(station.slug) as events:
        call_command(
            "retrain",
            "--station",
            station.slug,
            "--wait",
            "--timeout",
            "170",
            stdout=output,
            stderr=StringIO(),
        )
        # the last events are published after the row changed: wait for them, not for a time
        assert events.wait_until(job_finished_event, timeout=30), events.events

    job = TrainingJob.objects.select_related("candidate", "snapshot").get()
    assert job.status == TrainingStatus.SHADOW, f"{job.error}\n{live_celery_worker.log()}"
    assert f"Job {job.pk}: passed the gate: challenger in shadow" in output.getvalue()
    assert job.trigger == TrainingTrigger.COMMAND and job.attempts == 1
    assert (job.epoch, job.epochs) == (1, 1) and job.step == job.steps > 0

    # a candidate registered in MLflow and mirrored as a row, from one finished, tagged run
    candidate = job.candidate
    assert candidate.name == station_model_name(station) == "loupe-line-a"
    assert mlflow_registry.versions(name=candidate.name) == [candidate.version]
    [run] = mlflow_runs_of(job)
    assert run.status == "FINISHED" and run.versions == ((candidate.name, candidate.version),)
    assert candidate.mlflow_run_id == run.run_id and candidate.dataset_name == "station-line-a"

    # candidate and champion evaluated on the snapshot's frozen test split, the decision stored
    test_units = sum(1 for entry in job.snapshot.manifest if entry["split"] == Split.TEST)
    assert test_units > 0 and job.evaluation["units"] == test_units
    assert job.evaluation["candidate"]["n_test"] == job.evaluation["champion"]["n_test"] == test_units
    assert job.champion == champion
    assert job.gate["passed"] is True and len(job.gate["reasons"]) == 2
    assert job.gate["figures"]["champion"]["auroc"] == job.evaluation["champion"]["image_auroc"]

    # the challenger in shadow: an audited change by no person, naming the job; the alias follows
    station.refresh_from_db()
    assert (
        station.challenger == candidate and station.champion == champion and station.rollout_mode == "shadow"
    )
    change = StationChange.objects.get(station=station, field="challenger")
    assert change.changed_by is None and change.new_value == f"loupe-line-a:{candidate.version}"
    assert f"training job {job.pk} (manage.py retrain) passed the gate" in change.note
    assert mlflow_registry.aliases(name=candidate.name) == {"line-a-challenger": candidate.version}

    # the worker published live progress and the status changes on the station's channel
    progress = [event["job"] for event in events.events if event["type"] == "training.progress"]
    statuses = [event["job"]["status"] for event in events.events if event["type"] == "training.status"]
    assert progress and progress[-1]["step"] == progress[-1]["steps"] and progress[-1]["loss"] is not None
    assert progress[-1]["epoch"] == progress[-1]["epochs"] == 1 and progress[-1]["id"] == job.pk
    # "queued" comes from this process, the rest from the worker: only the worker's are ordered
    assert sorted(statuses) == ["queued", "running", "shadow"] and statuses[-1] == "shadow"


def test_the_gate_keeps_out_a_candidate_the_champion_beats(
    tiny_retraining, labelled_station, certain_champion
):
    # the champion certifies every decision: it covers the whole test split at the target escape
    # rate; a toy candidate certified on a handful of validation units covers none of it
    station = labelled_station(slug="line-b", units=36, champion=certain_champion())
    job, _ = training_job_request(station=station, trigger=TrainingTrigger.ADMIN)

    job = training_job_run(job=job)  # the task's body, in this process

    assert job.status == TrainingStatus.REJECTED, job.error
    assert job.gate["passed"] is False
    assert job.gate["figures"]["champion"]["coverage"] == 1.0
    assert job.gate["figures"]["candidate"]["coverage"] < 1.0
    assert any(
        reason.startswith("coverage at 0.01 error") and "< champion's 1.000 - 0" in reason
        for reason in job.gate["reasons"]
    ), job.gate["reasons"]
    # the candidate stays registered, a rejected candidate; the station is untouched
    assert job.candidate is not None and ModelVersion.objects.filter(name="loupe-line-b").count() == 1
    station.refresh_from_db()
    assert station.challenger is None
    assert not StationChange.objects.filter(station=station, field="challenger").exists()

    # asking again on the same data changes nothing
    assert training_job_request(station=station, trigger=TrainingTrigger.ADMIN) == (job, False)


def test_a_retry_deletes_what_a_killed_attempt_registered_without_its_row(
    tiny_retraining, labelled_station, tiny_bundle
):
    station = labelled_station(slug="line-c", units=36, gate_auroc_margin=1.0, gate_coverage_margin=1.0)
    job, _ = training_job_request(station=station, trigger=TrainingTrigger.ADMIN)
    orphan = killed_attempt_registered(job, tiny_bundle, name="loupe-line-c")

    job = training_job_run(job=job)

    assert job.status == TrainingStatus.SHADOW, job.error
    assert job.attempts == 2
    # the killed attempt's run ended FAILED and its version is gone; only the retry's is left
    runs = {run.run_id: run for run in mlflow_runs_of(job)}
    assert runs[orphan].status == "FAILED" and runs[orphan].versions == ()
    assert mlflow_registry.versions(name="loupe-line-c") == [job.candidate.version]
    assert list(ModelVersion.objects.filter(name="loupe-line-c")) == [job.candidate]
    assert job.candidate.mlflow_run_id != orphan


def test_a_retry_adopts_a_version_a_killed_attempt_completed(tiny_retraining, labelled_station, tiny_bundle):
    station = labelled_station(slug="line-d", units=36, gate_auroc_margin=1.0, gate_coverage_margin=1.0)
    job, _ = training_job_request(station=station, trigger=TrainingTrigger.ADMIN)
    run_id = killed_attempt_registered(job, tiny_bundle, name="loupe-line-d", with_row=True)

    job = training_job_run(job=job)

    # no second training: the complete version is the candidate, evaluated and gated
    assert job.status == TrainingStatus.SHADOW, job.error
    assert job.candidate.mlflow_run_id == run_id
    assert mlflow_registry.versions(name="loupe-line-d") == [job.candidate.version]
    [run] = mlflow_runs_of(job)
    assert run.status == "FINISHED"
    assert job.evaluation["candidate"]["n_test"] > 0


def killed_attempt_registered(job: TrainingJob, bundle, *, name: str, with_row: bool = False) -> str:
    """What a worker killed after `register_model` leaves: a RUNNING run tagged with the job, a
    registered version (and, if it got that far, its row), and the job running with a silent
    heartbeat. The run's id."""
    from datetime import timedelta

    from django.utils import timezone

    client = MlflowClient(
        tracking_uri=settings.MLFLOW_TRACKING_URI, registry_uri=settings.MLFLOW_TRACKING_URI
    )
    run = client.create_run(mlflow_registry.experiment_id(), tags={JOB_TAG: str(job.uuid)})
    client.log_artifacts(run.info.run_id, str(bundle), mlflow_registry.MODEL_ARTIFACT_PATH)
    registered = mlflow_registry.register_model(run_id=run.info.run_id, name=name)
    if with_row:
        ModelVersion.objects.create(
            name=registered.name,
            version=registered.version,
            mlflow_run_id=registered.run_id,
            source_uri=registered.source,
            architecture="defectnet-efficientnet_lite0-64",
            classes=["crack", "scratch"],
        )
    silent = timezone.now() - timedelta(seconds=settings.LOUPE_TRAINING_STALE_SECONDS + 1)
    TrainingJob.objects.filter(pk=job.pk).update(
        status=TrainingStatus.RUNNING, attempts=1, heartbeat_at=silent
    )
    return run.info.run_id


def test_a_worker_killed_mid_training_is_retried_cleanly(
    monkeypatch, settings, transactional_db, media_root, redis_client, labelled_station, tmp_path
):
    retraining_settings(monkeypatch, settings, LOUPE_RETRAIN_EPOCHS="2")  # long enough to kill
    station = labelled_station(slug="line-e", units=36, gate_auroc_margin=1.0, gate_coverage_margin=1.0)
    first, first_log = worker_start(tmp_path, "first")
    try:
        job, _ = training_job_request(station=station, trigger=TrainingTrigger.ADMIN)
        job_wait(job, lambda job: job.status == "running" and job.step >= 2, worker_log=first_log.read_text)
        assert job.step < job.steps, "the training ended before the test could kill it"
        os.killpg(first.pid, signal.SIGKILL)  # the worker and anything it started, mid-training
        first.wait()
    finally:
        stop_test_process(first, timeout=5)
    [dead_run] = mlflow_runs_of(job)
    assert dead_run.status == "RUNNING" and dead_run.versions == ()

    # the heartbeat goes stale; the beat's sweep queues the job again for a new worker
    time.sleep(settings.LOUPE_TRAINING_STALE_SECONDS + 0.5)
    assert training_jobs_stale_requeue() == [job]
    job.refresh_from_db()
    assert job.status == TrainingStatus.QUEUED and job.attempts == 1
    second, second_log = worker_start(tmp_path, "second")
    try:
        job = job_wait(job, job_done, worker_log=second_log.read_text)
    finally:
        stop_test_process(second, timeout=5)

    assert job.status == TrainingStatus.SHADOW, f"{job.error}\n{second_log.read_text()}"
    assert job.attempts == 2 and "attempt 1: no heartbeat" in job.error
    assert mlflow_registry.versions(name="loupe-line-e") == [job.candidate.version]
    assert list(ModelVersion.objects.filter(name="loupe-line-e")) == [job.candidate]
    runs = {run.run_id: run for run in mlflow_runs_of(job)}
    assert runs[dead_run.run_id].status == "FAILED"
    assert runs[job.candidate.mlflow_run_id].status == "FINISHED" and len(runs) == 2


def test_a_class_added_later_reaches_the_data_set_and_the_next_training(
    tiny_retraining, labelled_station, inspector, tmp_path
):
    # given a station whose data set was made with its first classes
    station = labelled_station(slug="line-f", units=36, gate_auroc_margin=1.0, gate_coverage_margin=1.0)
    assert station_dataset_get(station=station).classes == ["crack", "scratch"]

    # when the supervisor adds a class and an inspector fails units as that class
    station_update(station=station, changes={"defect_classes": ["crack", "scratch", "stain"]}, user=inspector)
    station.refresh_from_db()
    for index in range(4):
        unit = unit_submit(
            station=station,
            serial=f"stained-{index}",
            image_data=jpeg_bytes(500 + index, width=160, height=90, label="crack"),
            filename="unit.jpg",
        ).unit
        decision_record(unit=unit, user=inspector, verdict="fail", defect_classes=["stain"])

    # then the data set lists it, after the others, and the training learns it
    assert station_dataset_get(station=station).classes == ["crack", "scratch", "stain"]
    job, _ = training_job_request(station=station, trigger=TrainingTrigger.ADMIN)
    assert job.snapshot.classes == ["crack", "scratch", "stain"]
    stained = [sample for sample in snapshot_samples(snapshot=job.snapshot) if "stain" in sample.classes]
    assert len(stained) == 4
    job = training_job_run(job=job)
    assert job.candidate is not None, job.error
    assert job.candidate.classes == ["crack", "scratch", "stain"]
    # the bundle registered in MLflow has the class in its head's list
    bundle = mlflow_registry.download_bundle(
        name=job.candidate.name, version=job.candidate.version, cache_dir=tmp_path
    )
    assert read_config(bundle).classes == ("crack", "scratch", "stain")
