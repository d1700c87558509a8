"""Fixtures for continuous training: tiny retraining settings, stations whose data set is
labelled through the inspectors' own path, champions, and Celery workers to start and kill.

Retraining here trains the real recipe at toy scale (64 px, one epoch, a few dozen units), so a
job takes seconds on a CPU. The settings reach worker subprocesses through the environment.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from inspection.enums import AutomationLevel
from inspection.models import Station, Unit
from inspection.services.decisions import decision_record
from inspection.services.units import unit_submit
from models_registry.models import ModelVersion
from tests.conftest import start_test_process, stop_test_process
from tests.inspection.conftest import device_client, make_model_version, make_station, tiny_bundle  # noqa: F401
from tests.inspection.factories import jpeg_bytes, person
from workers.models import TrainingJob

TINY_RETRAINING = {
    "LOUPE_RETRAIN_EPOCHS": "1",
    "LOUPE_RETRAIN_INPUT_SIZE": "64",
    "LOUPE_RETRAIN_BATCH_SIZE": "4",
    "LOUPE_TRAINING_HEARTBEAT_SECONDS": "0.5",
    "LOUPE_TRAINING_STALE_SECONDS": "3",
    "LOUPE_TRAINING_PROGRESS_SECONDS": "0",
}
JOB_TIMEOUT_SECONDS = 180


@pytest.fixture
def tiny_retraining(monkeypatch, settings) -> dict[str, str]:
    """Toy-scale retraining for this process and for the workers it starts (request it before
    `live_celery_worker`)."""
    return retraining_settings(monkeypatch, settings)


def retraining_settings(monkeypatch, settings, **overrides: str) -> dict[str, str]:
    values = {**TINY_RETRAINING, **overrides}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
        setattr(settings, name, float(value) if "SECONDS" in name else int(value))
    return values


@pytest.fixture
def inspector(db):
    return person("ines", role="inspector")


@pytest.fixture
def labelled_station(make_station, media_root, inspector) -> Callable[..., Station]:  # noqa: F811
    """A station (human-only level: no model runs on arrival) whose units an inspector judged:
    every verdict is a label of the station's data set, as on the line."""

    def make(slug: str = "screens-1", units: int = 36, champion="default", **settings) -> Station:
        station = make_station(slug=slug, level=AutomationLevel.HUMAN, champion=champion, **settings)
        units_judge(station, units, inspector=inspector)
        return station

    return make


def units_judge(station: Station, count: int, *, inspector, seed: int = 0) -> list[Unit]:
    """Post `count` generated units (half cracked) and record the inspector's true verdict."""
    units = []
    for index in range(count):
        cracked = index % 2 == 1
        submission = unit_submit(
            station=station,
            serial=f"{station.slug}-{seed}-{index}",
            image_data=jpeg_bytes(
                seed * 10_000 + index, width=160, height=90, label="crack" if cracked else "no_defect"
            ),
            filename="unit.jpg",
        )
        decision_record(
            unit=submission.unit,
            user=inspector,
            verdict="fail" if cracked else "pass",
            defect_classes=["crack"] if cracked else [],
        )
        units.append(submission.unit)
    return units


@pytest.fixture
def certain_champion(make_model_version) -> Callable[..., ModelVersion]:  # noqa: F811
    """A champion whose bundle certifies every decision at every error bound: on any test split
    it decides 100 % of the units, which a toy candidate (certified on a handful of validation
    units) cannot match. The gate must keep such a candidate out."""

    def make(name: str = "certain", version: int = 1) -> ModelVersion:
        model_version = make_model_version(name=name, version=version, threshold=0.0)
        config_path = Path(model_version.source_uri) / "loupe-model.json"
        config = json.loads(config_path.read_text())
        config["risk_control"] = {
            alpha: {"threshold": 0.0, "certified": True, "coverage": 1.0} for alpha in config["risk_control"]
        }
        config_path.write_text(json.dumps(config))
        return model_version

    return make


def job_wait(job: TrainingJob, until: Callable[[TrainingJob], bool], *, worker_log: Callable[[], str] = str):
    """Poll the job's row until `until(job)` holds (or fail with the worker's log)."""
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if until(job):
            return job
        time.sleep(0.1)
    pytest.fail(f"job {job.pk} stuck at {job.status} (step {job.step}/{job.steps}):\n{worker_log()}")


def job_done(job: TrainingJob) -> bool:
    return not job.active


def worker_start(tmp_path: Path, name: str):
    """A Celery worker subprocess like `live_celery_worker`'s, which the test may kill; returns
    (process, log path) once it answers a ping."""
    from config.celery import app

    hostname = f"loupe-training-{name}-{uuid.uuid4().hex[:6]}@localhost"
    log_path = tmp_path / f"worker-{name}.log"
    command = [
        sys.executable, "-m", "celery", "-A", "config", "worker",
        "--pool", "solo", "--concurrency", "1", "--loglevel", "INFO",
        "--hostname", hostname, "--without-mingle", "--without-gossip",
        "--queues", "celery,training",  # the default queue and the trainings' (config/settings.py)
    ]  # fmt: skip
    process = start_test_process(command, log_path=log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"worker {name} exited:\n{log_path.read_text(errors='replace')}")
        if app.control.ping(destination=[hostname], timeout=0.5):
            return process, log_path
    stop_test_process(process, timeout=5)
    pytest.fail(f"worker {name} did not answer:\n{log_path.read_text(errors='replace')}")
