"""Training, registering and loading model versions."""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from models_registry import mlflow_registry
from models_registry.ml.calibration import DEFAULT_ALPHAS
from models_registry.ml.geometry import Geometry, GeometryChoice, GeometryRequest
from models_registry.ml.types import Sample
from models_registry.models import ModelVersion

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingResult:
    model_version: ModelVersion
    validation_metrics: dict
    test_metrics: dict | None
    seconds: dict[str, float]


def _plot_curves(run: mlflow_registry.TrainingRun, metrics: dict, split: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    curves = metrics.get("curves", {})
    if curves.get("precision_recall"):
        figure, axis = pyplot.subplots(figsize=(5, 4))
        recall, precision = zip(*curves["precision_recall"], strict=True)
        axis.plot(recall, precision)
        axis.set(
            xlabel="recall", ylabel="precision", title=f"Defect vs good, {split}", xlim=(0, 1), ylim=(0, 1.02)
        )
        run.log_figure(figure, f"plots/{split}_precision_recall.png")
        pyplot.close(figure)
    if curves.get("risk_coverage"):
        figure, axis = pyplot.subplots(figsize=(5, 4))
        coverage, risk = zip(*curves["risk_coverage"], strict=True)
        axis.plot(coverage, risk)
        for alpha in DEFAULT_ALPHAS:
            axis.axhline(alpha, linestyle=":", linewidth=0.8, color="grey")
        axis.set(
            xlabel="coverage (share decided by the model)",
            ylabel="error among decided",
            title=f"Risk-coverage, {split}",
        )
        run.log_figure(figure, f"plots/{split}_risk_coverage.png")
        pyplot.close(figure)


def _scalar_metrics(prefix: str, metrics: dict) -> dict[str, float | None]:
    flat: dict[str, float | None] = {}
    for key, value in metrics.items():
        if isinstance(value, (int, float)) or value is None:
            flat[f"{prefix}_{key}"] = value
        elif key in ("coverage_at_error", "error_among_automated"):
            for alpha, number in value.items():
                flat[f"{prefix}_{key}_{alpha}"] = number
    return flat


def model_version_train(
    *,
    model_name: str,
    dataset_name: str,
    classes: Sequence[str],
    train: Sequence[Sample],
    validation: Sequence[Sample],
    test: Sequence[Sample] = (),
    epochs: int = 12,
    seed: int = 0,
    geometry: Geometry | GeometryChoice | GeometryRequest | None = None,
    backbone: str = "efficientnet_lite0",
    pretrained: bool = True,
    batch_size: int = 16,
    on_epoch: Callable | None = None,
    on_step: Callable | None = None,
    run_tags: Mapping[str, str] | None = None,
) -> TrainingResult:
    """Train, calibrate and evaluate a model, log it all to MLflow and register a version.

    The version row is written only after MLflow holds the complete bundle, so a failure
    anywhere leaves a FAILED run and no registered version. A killed process can still leave a
    RUNNING run, and a version registered in MLflow without its row: `run_tags` (e.g. a training
    job's id) let the caller find and clean those up (see `workers.retraining`). `geometry` (or
    what a request leaves open) is chosen from the training data: `ml.pipeline.geometry_for`.
    """
    from models_registry.ml.models.defectnet.training import TrainConfig
    from models_registry.ml.pipeline import geometry_for, train_bundle

    config = TrainConfig(epochs=epochs, seed=seed, batch_size=batch_size)
    choice = geometry_for(geometry, train)
    params = {
        "dataset": dataset_name,
        "classes": ",".join(classes),
        "backbone": backbone,
        "pretrained": pretrained,
        "geometry": choice.geometry.slug,
        "geometry_reason": choice.reason[:500],
        "train_size": len(train),
        "validation_size": len(validation),
        "test_size": len(test),
        **config.as_dict(),
    }
    with mlflow_registry.training_run(
        run_name=f"{model_name}-train", tags={"loupe.dataset": dataset_name, **(run_tags or {})}
    ) as run:
        run.log_params(params)

        def epoch_logged(report) -> None:
            run.log_metrics(
                {
                    "train_loss": report.train_loss,
                    "validation_loss": report.validation_loss,
                    **{f"loss_{k}": v for k, v in report.losses.items()},
                    "epoch_seconds": report.seconds,
                },
                step=report.epoch,
            )
            if on_epoch is not None:
                on_epoch(report)

        with tempfile.TemporaryDirectory(prefix="loupe-train-") as workdir:
            outcome = train_bundle(
                out_dir=Path(workdir) / "bundle",
                classes=classes,
                train=train,
                validation=validation,
                test=test,
                backbone=backbone,
                pretrained=pretrained,
                geometry=choice,
                config=config,
                threads=settings.LOUPE_INFERENCE_THREADS,
                device=settings.LOUPE_TORCH_DEVICE,
                on_epoch=epoch_logged,
                on_step=on_step,
            )
            run.log_metrics(_scalar_metrics("validation", outcome.validation_metrics))
            run.log_dict(outcome.validation_metrics, "evaluation/validation.json")
            _plot_curves(run, outcome.validation_metrics, "validation")
            if outcome.test_metrics is not None:
                run.log_metrics(_scalar_metrics("test", outcome.test_metrics))
                run.log_dict(outcome.test_metrics, "evaluation/test.json")
                _plot_curves(run, outcome.test_metrics, "test")
            run.log_metrics({f"seconds_{k}": v for k, v in outcome.seconds.items()})
            run.log_dict(outcome.config.risk_control, "calibration/risk_control.json")
            run.log_artifacts(outcome.bundle_dir, mlflow_registry.MODEL_ARTIFACT_PATH)
        registered = mlflow_registry.register_model(
            run_id=run.run_id, name=model_name, description=f"Loupe defect model trained on {dataset_name}"
        )
        with transaction.atomic():
            version = ModelVersion.objects.create(
                name=registered.name,
                version=registered.version,
                mlflow_run_id=registered.run_id,
                source_uri=registered.source,
                dataset_name=dataset_name,
                architecture=f"defectnet-{backbone}-{choice.geometry.slug}",
                geometry=choice.geometry.as_dict(),
                classes=list(outcome.config.classes),
                metrics={"validation": outcome.config.metrics, "test": _without_curves(outcome.test_metrics)},
                risk_control=outcome.config.risk_control,
            )
    return TrainingResult(version, outcome.validation_metrics, outcome.test_metrics, outcome.seconds)


def _without_curves(metrics: dict | None) -> dict | None:
    if metrics is None:
        return None
    return {k: v for k, v in metrics.items() if k != "curves"}


def model_bundle_path(*, model_version: ModelVersion) -> Path:
    return mlflow_registry.download_bundle(
        name=model_version.name, version=model_version.version, cache_dir=settings.LOUPE_MODEL_CACHE
    )


_predictors: dict[tuple[str, int, str], object] = {}
_predictors_lock = threading.Lock()


def predictor_get(*, model_version: ModelVersion, backend: str = "onnx"):
    """The loaded predictor for a version: one per process and version, loaded on first use."""
    from models_registry.ml.serving.predictor import load_predictor

    key = (model_version.name, model_version.version, backend)
    with _predictors_lock:
        predictor = _predictors.get(key)
        if predictor is None:
            predictor = load_predictor(
                model_bundle_path(model_version=model_version),
                backend=backend,
                model_version=f"{model_version.name}:{model_version.version}",
                threads=settings.LOUPE_INFERENCE_THREADS,
            )
            _predictors[key] = predictor
        return predictor


_references: dict[tuple[str, int], object] = {}


def model_reference_get(*, model_version: ModelVersion):
    """The version's drift reference (`ml.drift.Reference`) and raw arrays, from its bundle's
    `reference.npz`: `(reference, arrays)`. `reference` is None for a bundle made before drift
    monitoring (it lacks the input statistics); `arrays` then still holds its scores."""
    from models_registry.ml.drift import Reference
    from models_registry.ml.serving.bundle import load_reference

    key = (model_version.name, model_version.version)
    with _predictors_lock:
        cached = _references.get(key)
    if cached is None:
        arrays = load_reference(model_bundle_path(model_version=model_version))
        try:
            reference = Reference.from_arrays(arrays)
        except KeyError:
            reference = None
        cached = (reference, arrays)
        with _predictors_lock:
            _references[key] = cached
    return cached


def model_version_evaluate(*, model_version: ModelVersion, samples: Sequence[Sample]) -> dict:
    """Evaluate a registered version on labelled samples, through its served ONNX graph."""
    from models_registry.ml.pipeline import evaluate_bundle

    labelled = [s for s in samples if s.defective is not None]
    metrics = evaluate_bundle(
        model_bundle_path(model_version=model_version), labelled, threads=settings.LOUPE_INFERENCE_THREADS
    )
    return _without_curves(metrics)
