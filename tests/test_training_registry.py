"""Training end to end: a generated data set through `train` into MLflow and the registry."""

import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from labeling.models import Dataset, DatasetItem, Split
from labeling.splits import dataset_split_assign
from models_registry import mlflow_registry
from models_registry.ml.synthetic.config import SyntheticConfig
from models_registry.ml.synthetic.scene import generate_unit
from models_registry.ml.synthetic.writing import write_dataset
from models_registry.models import ModelVersion

TINY = ["--epochs", "1", "--input-size", "64", "--batch-size", "4"]


@pytest.fixture
def synthetic_dataset(tmp_path, media_root):
    folder = tmp_path / "units"
    write_dataset(folder, 24, seed=3, config=SyntheticConfig(width=128, height=72), format="masks")
    call_command("import_dataset", str(folder), name="tiny", format="masks", stdout=StringIO())
    return Dataset.objects.get(name="tiny")


def _train(*extra: str) -> dict:
    out = StringIO()
    call_command("train", "--dataset", "tiny", *TINY, "--json", *extra, stdout=out, stderr=StringIO())
    return json.loads(out.getvalue())


@pytest.mark.django_db(transaction=True)
def test_train_registers_a_version_in_mlflow_and_mirrors_it(synthetic_dataset, client):
    # when training from the command line
    result = _train("--seed", "1")
    # then the JSON names a model that evaluate accepts, and MLflow holds the run and the version
    assert {"model", "version", "mlflow_run_id"} <= set(result)
    version = ModelVersion.objects.get(name="loupe-tiny", version=result["version"])
    assert version.mlflow_run_id == result["mlflow_run_id"]
    mlflow_client = mlflow_registry._client()
    run = mlflow_client.get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["dataset"] == "tiny"
    assert "train_loss" in run.data.metrics and "validation_image_accuracy" in run.data.metrics
    artifacts = {a.path for a in mlflow_client.list_artifacts(result["mlflow_run_id"], "model")}
    assert {"model/model.onnx", "model/weights.pt", "model/loupe-model.json"} <= artifacts
    plots = {a.path for a in mlflow_client.list_artifacts(result["mlflow_run_id"], "plots")}
    assert any("risk_coverage" in p for p in plots) and any("precision_recall" in p for p in plots)
    registered = mlflow_client.get_model_version("loupe-tiny", str(result["version"]))
    assert registered.run_id == result["mlflow_run_id"]

    # and evaluate reports every figure the issue names
    out = StringIO()
    call_command("evaluate", "--model", result["model"], "--dataset", "tiny", "--json", stdout=out)
    metrics = json.loads(out.getvalue())
    for key in (
        "n_test",
        "image_accuracy",
        "image_auroc",
        "ece",
        "pixel_auroc",
        "coverage_at_error",
        "per_class",
    ):
        assert key in metrics
    assert set(metrics["coverage_at_error"]) >= {"0.01", "0.02", "0.05"}
    assert (
        metrics["n_test"] == DatasetItem.objects.filter(dataset=synthetic_dataset, split=Split.TEST).count()
    )

    # and predict prints one JSON line per image
    image = DatasetItem.objects.filter(dataset=synthetic_dataset).first().image.file.path
    out = StringIO()
    call_command("predict", "--model", result["model"], image, stdout=out)
    prediction = json.loads(out.getvalue().strip().splitlines()[0])
    assert prediction["model_version"] == result["model"]
    assert 0 <= prediction["defect_probability"] <= 1

    # and the service reports ready, with the real model loaded from MLflow's artifacts
    response = client.get("/api/v1/health")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["model"]["detail"] == f"loupe-tiny v{result['version']}"


@pytest.mark.django_db(transaction=True)
def test_the_test_split_is_frozen_across_versions(synthetic_dataset, tmp_path):
    first = dataset_split_assign(dataset=synthetic_dataset)
    test_items = set(
        DatasetItem.objects.filter(dataset=synthetic_dataset, split=Split.TEST).values_list("id", flat=True)
    )
    assert first.test >= 1 and first.validation >= 1 and first.newly_assigned == 24
    # when more units arrive and the split is assigned again
    more = tmp_path / "more"
    write_dataset(more, 10, seed=99, config=SyntheticConfig(width=128, height=72), format="masks")
    call_command("import_dataset", str(more), name="tiny", format="masks", stdout=StringIO())
    second = dataset_split_assign(dataset=synthetic_dataset)
    # then no earlier item moved, and no new item joined the test split
    assert second.newly_assigned == 10
    after = set(
        DatasetItem.objects.filter(dataset=synthetic_dataset, split=Split.TEST).values_list("id", flat=True)
    )
    assert after == test_items
    assert dataset_split_assign(dataset=synthetic_dataset).newly_assigned == 0


@pytest.mark.django_db(transaction=True)
def test_a_failed_training_leaves_a_failed_run_and_no_version(synthetic_dataset, monkeypatch):
    import models_registry.ml.serving.export as export

    def broken_export(*args, **kwargs):
        raise RuntimeError("disk full")

    client = mlflow_registry._client()
    experiment = mlflow_registry.experiment_id()
    earlier = {run.info.run_id for run in client.search_runs([experiment])}
    versions_before = mlflow_registry.latest_version("loupe-tiny")
    monkeypatch.setattr(export, "export_onnx", broken_export)
    with pytest.raises(RuntimeError, match="disk full"):
        _train()
    assert not ModelVersion.objects.exists()
    runs = [run for run in client.search_runs([experiment]) if run.info.run_id not in earlier]
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
    assert mlflow_registry.latest_version("loupe-tiny") == versions_before


@pytest.mark.django_db
def test_train_and_evaluate_name_bad_arguments(synthetic_dataset):
    with pytest.raises(CommandError, match="no dataset named 'nope'"):
        call_command("train", "--dataset", "nope")
    with pytest.raises(CommandError, match="multiple of 32"):
        call_command("train", "--dataset", "tiny", "--input-size", "100")
    with pytest.raises(CommandError, match="no registered model"):
        call_command("evaluate", "--model", "missing:3", "--dataset", "tiny")
    with pytest.raises(CommandError, match="no registered model"):
        call_command("predict", "--model", "missing", "x.jpg")


@pytest.mark.django_db(transaction=True)
def test_train_says_which_geometry_and_why_and_tiles_serve_whole_frames(synthetic_dataset, tmp_path):
    # given no geometry asked for, train chooses one from the data and says why
    err = StringIO()
    out = StringIO()
    call_command(
        "train", "--dataset", "tiny", "--epochs", "1", "--batch-size", "4", "--json", stdout=out, stderr=err
    )
    chosen = json.loads(out.getvalue())
    assert "Geometry: " in err.getvalue() and chosen["geometry_reason"] in err.getvalue()
    assert chosen["geometry"]["kind"] == "aspect" and "median frame 128x72" in chosen["geometry_reason"]
    # when tiles are asked for
    result = _train("--tile", "64", "--tile-scale", "1.0", "--tile-overlap", "16", "--model-name", "tiled")
    version = ModelVersion.objects.get(name="tiled")
    assert version.geometry == {"kind": "tiles", "width": 64, "height": 64, "scale": 1.0, "overlap": 16}
    assert version.architecture.endswith("tiles64@1") and result["geometry_reason"].startswith("asked for")
    # then predict takes a large frame through the tiles and answers in its own pixels
    big = tmp_path / "big.jpg"
    generate_unit(np.random.default_rng(1), SyntheticConfig(width=640, height=360)).image.save(big)
    dark = tmp_path / "dark.png"
    Image.new("RGB", (640, 360)).save(dark)
    out = StringIO()
    call_command("predict", "--model", "tiled", str(big), str(dark), stdout=out)
    judged, refused = (json.loads(line) for line in out.getvalue().strip().splitlines())
    assert all(r["x"] + r["width"] <= 640.01 and r["y"] + r["height"] <= 360.01 for r in judged["regions"])
    assert refused == {"image": str(dark), "frame_check": "uniform", "detail": refused["detail"]}
    assert refused["detail"].startswith("frame check: uniform frame")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--tile", "64", "--geometry", "aspect"], "for tiles, not --geometry aspect"),
        (["--tile", "64", "--tile-overlap", "40"], "overlap"),
        (["--tile", "100"], "multiple of 32"),
        (["--tile-scale", "9"], "scale must be between"),
    ],
)
def test_train_names_a_bad_geometry(synthetic_dataset, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("train", "--dataset", "tiny", *arguments, stderr=StringIO())
