"""The one module that talks to MLflow: tracking runs, the Model Registry, artifact downloads.

A model version's artifacts are a Loupe bundle folder (see `models_registry.ml.serving.bundle`) under
the run's `model/` path. Everything else in Loupe goes through these functions, so the
embedded SQLite store and an MLflow server behave the same.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

MODEL_ARTIFACT_PATH = "model"


def _client():
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(settings.MLFLOW_TRACKING_URI)
    if settings.MLFLOW_TRACKING_URI.startswith("sqlite:///"):
        Path(settings.MLFLOW_TRACKING_URI.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    return MlflowClient(tracking_uri=settings.MLFLOW_TRACKING_URI, registry_uri=settings.MLFLOW_TRACKING_URI)


def experiment_id(name: str | None = None) -> str:
    client = _client()
    name = name or settings.MLFLOW_EXPERIMENT_NAME
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if settings.EMBEDDED_MLFLOW or settings.MLFLOW_ARTIFACT_ROOT != str(
        settings.LOUPE_DATA_DIR / "mlflow" / "artifacts"
    ):
        root = Path(settings.MLFLOW_ARTIFACT_ROOT)
        root.mkdir(parents=True, exist_ok=True)
        artifact_location = root.resolve().as_uri()
    from mlflow.exceptions import MlflowException

    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:  # another process created it first
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


class TrainingRun:
    """What a training logs while it runs: parameters, per-step metrics, files."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self._client = _client()

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        self._client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])

    def log_metrics(self, metrics: dict[str, float | None], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(k, float(v), now, step or 0) for k, v in metrics.items() if v is not None]
        if entries:
            self._client.log_batch(self.run_id, metrics=entries)

    def log_artifacts(self, directory: Path, artifact_path: str | None = None) -> None:
        self._client.log_artifacts(self.run_id, str(directory), artifact_path)

    def log_dict(self, data: dict, artifact_file: str) -> None:
        self._client.log_dict(self.run_id, data, artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self._client.log_figure(self.run_id, figure, artifact_file)

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self._client.set_tag(self.run_id, key, value)


@contextmanager
def training_run(run_name: str, tags: dict[str, str] | None = None) -> Iterator[TrainingRun]:
    """An MLflow run, ended FINISHED on success and FAILED on any error (then re-raised)."""
    client = _client()
    run = client.create_run(experiment_id(), run_name=run_name, tags=tags or {})
    try:
        yield TrainingRun(run.info.run_id)
    except BaseException:
        client.set_terminated(run.info.run_id, status="FAILED")
        raise
    client.set_terminated(run.info.run_id, status="FINISHED")


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: int
    run_id: str
    source: str


def register_model(*, run_id: str, name: str, description: str = "") -> RegisteredVersion:
    """Register the run's `model/` artifacts as a new version of `name`."""
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        client.create_registered_model(name, description=description or None)
    except MlflowException as error:
        if "RESOURCE_ALREADY_EXISTS" not in str(error.error_code):
            raise
    source = f"{client.get_run(run_id).info.artifact_uri}/{MODEL_ARTIFACT_PATH}"
    version = client.create_model_version(name, source=source, run_id=run_id, description=description or None)
    return RegisteredVersion(name=name, version=int(version.version), run_id=run_id, source=source)


def alias_set(*, name: str, alias: str, version: int) -> None:
    """Point a registry alias (e.g. `screens-1-champion`) of model `name` at `version`."""
    _client().set_registered_model_alias(name, alias, str(version))


def alias_delete(*, name: str, alias: str) -> None:
    """Remove an alias; nothing happens if the model has no such alias."""
    from mlflow.exceptions import MlflowException

    try:
        _client().delete_registered_model_alias(name, alias)
    except MlflowException as error:
        if "RESOURCE_DOES_NOT_EXIST" not in str(error.error_code) and "not found" not in str(error).lower():
            raise


def aliases(*, name: str) -> dict[str, int]:
    """The model's aliases and the versions they point at."""
    model = _client().get_registered_model(name)
    return {alias: int(version) for alias, version in model.aliases.items()}


def latest_version(name: str) -> int | None:
    client = _client()
    versions = client.search_model_versions(f"name = '{name}'")
    return max((int(v.version) for v in versions), default=None)


def download_bundle(*, name: str, version: int, cache_dir: Path) -> Path:
    """The version's bundle folder on local disk, downloaded once and then reused."""
    import mlflow

    target = Path(cache_dir) / name / str(version)
    if (target / "loupe-model.json").exists():
        return target
    client = _client()
    source = client.get_model_version(name, str(version)).source
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
    try:
        downloaded = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(staging)))
        downloaded.rename(target)  # atomic: a half-downloaded bundle is never seen
    except OSError:
        if not (target / "loupe-model.json").exists():
            raise
        # another process finished the same download first
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@dataclass(frozen=True)
class RunState:
    run_id: str
    status: str  # RUNNING, FINISHED, FAILED, KILLED, SCHEDULED
    versions: tuple[tuple[str, int], ...]  # (name, version) registered from the run


def runs_tagged(*, key: str, value: str) -> list[RunState]:
    """Every run of the experiment carrying the tag `key` = `value`, with the versions registered
    from each (how a retried training finds what a killed attempt left behind)."""
    from mlflow.entities import ViewType

    client = _client()
    runs = client.search_runs(
        [experiment_id()],
        filter_string=f"tags.`{key}` = '{value}'",
        run_view_type=ViewType.ALL,
        max_results=1000,
    )
    states = []
    for run in runs:
        versions = client.search_model_versions(f"run_id = '{run.info.run_id}'")
        states.append(
            RunState(
                run_id=run.info.run_id,
                status=run.info.status,
                versions=tuple(sorted((v.name, int(v.version)) for v in versions)),
            )
        )
    return states


def run_terminate(*, run_id: str, status: str) -> None:
    """End a run left open (its process died) as FINISHED, FAILED or KILLED."""
    _client().set_terminated(run_id, status=status)


def model_version_delete(*, name: str, version: int) -> None:
    """Delete one registered version (its run and artifacts stay)."""
    _client().delete_model_version(name, str(version))


def versions(*, name: str) -> list[int]:
    """The registered versions of model `name` (none if it is not registered)."""
    return sorted(int(v.version) for v in _client().search_model_versions(f"name = '{name}'"))
