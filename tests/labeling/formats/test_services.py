"""`dataset_export` and `manage.py export_dataset`: what the formats leave out, file names, splits,
the command and the admin's zip (the round trips of each format are in its own test module)."""

import hashlib
import io
import json
import zipfile

import pytest
import yaml
from django.core.management.base import CommandError

from labeling.formats.services import DatasetExportError, dataset_export
from labeling.models import Dataset, DatasetItem
from labeling.services import dataset_import
from tests.inspection import conftest as inspection_fixtures
from tests.labeling.formats.factories import (
    write_image,
    write_text,
)
from tests.labeling.formats.roundtrip import (
    assert_same_labels,
    export_and_reimport,
    labels_by_image,
    labelstudio_dataset,
    run_export,
    sha256_of,
    synthetic_dataset,
)

pytestmark = pytest.mark.django_db


# The inspection tests' tiny registered model (trained once per session), for --predictions-model.
tiny_bundle = inspection_fixtures.tiny_bundle
make_model_version = inspection_fixtures.make_model_version


# --- What every export does ---------------------------------------------------------------------


@pytest.mark.parametrize("format", ["coco", "yolo", "voc"])
def test_detection_formats_leave_out_what_they_would_turn_into_no_defect(tmp_path, format):
    dataset = labelstudio_dataset(tmp_path)

    summary, _ = export_and_reimport(dataset, format, tmp_path)

    exported = set(labels_by_image(f"mixed-{format}"))
    assert sha256_of("images/class-only.jpg", dataset) not in exported
    assert sha256_of("images/unlabeled.jpg", dataset) not in exported
    assert summary.images == 3
    assert summary.left_out == {
        "unlabeled (the format reads an image without labels as 'no defect')": 1,
        "with a defect class that has no box, polygon or mask (chip)": 1,
    }


def test_images_with_the_same_file_name_get_distinct_files(tmp_path):
    write_image(tmp_path / "folders" / "scratch" / "unit.jpg", seed=1)
    write_image(tmp_path / "folders" / "good" / "unit.jpg", seed=2)
    dataset_import(path=tmp_path / "folders", name="same-names", format="folders")
    dataset = Dataset.objects.get(name="same-names")

    _, out = export_and_reimport(dataset, "labelstudio", tmp_path)

    assert len(list((out / "images").iterdir())) == 2
    assert_same_labels(labels_by_image("same-names-labelstudio"), labels_by_image("same-names"), pixels=0)


def test_exported_images_are_the_stored_files_byte_for_byte(tmp_path):
    dataset = synthetic_dataset(tmp_path, name="screens", format="coco")

    out = tmp_path / "out"
    dataset_export(dataset=dataset, format="voc", out=out)

    exported = {hashlib.sha256(path.read_bytes()).hexdigest() for path in (out / "JPEGImages").iterdir()}
    assert exported == set(
        DatasetItem.objects.filter(dataset=dataset).values_list("image__sha256", flat=True)
    )


def test_a_split_export_holds_only_that_split(tmp_path):
    dataset = synthetic_dataset(tmp_path, name="screens", format="coco")
    items = list(DatasetItem.objects.filter(dataset=dataset).order_by("id"))
    for index, item in enumerate(items):
        item.split = "test" if index < 3 else "train"
        item.save(update_fields=["split"])

    summary, out = export_and_reimport(dataset, "yolo", tmp_path, split="test")

    assert set(labels_by_image("screens-yolo")) == {item.image.sha256 for item in items[:3]}
    assert summary.images == 3
    assert sorted(path.name for path in (out / "images").iterdir()) == ["test"]
    assert yaml.safe_load((out / "data.yaml").read_text())["test"] == "images/test"


def test_an_export_that_would_hold_no_image_is_refused(tmp_path):
    dataset = synthetic_dataset(tmp_path, name="screens", format="coco")

    with pytest.raises(DatasetExportError, match="nothing to export"):
        dataset_export(dataset=dataset, format="coco", out=tmp_path / "out", split="validation")

    assert not (tmp_path / "out").exists()
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


# --- The command and the admin action ------------------------------------------------------------


def test_the_command_exports_and_prints_a_summary_line(tmp_path):
    labelstudio_dataset(tmp_path)

    output = run_export("--dataset", "mixed", "--format", "coco", "--out", str(tmp_path / "out"))

    assert "Exported 3 image(s) of data set 'mixed' as coco" in output
    assert "Note: left out 1 image(s) unlabeled" in output
    assert (tmp_path / "out" / "annotations.json").is_file()


def test_the_command_names_an_unknown_dataset_or_format(tmp_path):
    labelstudio_dataset(tmp_path)

    with pytest.raises(CommandError, match="no dataset named 'nope'"):
        run_export("--dataset", "nope", "--format", "coco", "--out", str(tmp_path / "out"))
    with pytest.raises(CommandError, match="invalid choice: 'tfrecord'"):
        run_export("--dataset", "mixed", "--format", "tfrecord", "--out", str(tmp_path / "out"))


def test_the_command_refuses_a_non_empty_folder_without_overwrite(tmp_path):
    labelstudio_dataset(tmp_path)
    out = tmp_path / "out"
    write_text(out / "notes.txt", "mine")

    with pytest.raises(CommandError, match="is not empty"):
        run_export("--dataset", "mixed", "--format", "voc", "--out", str(out))
    with pytest.raises(CommandError, match="not written by export_dataset"):
        run_export("--dataset", "mixed", "--format", "voc", "--out", str(out), "--overwrite")

    assert [path.name for path in out.iterdir()] == ["notes.txt"]


def test_overwrite_replaces_a_previous_export_as_a_whole(tmp_path):
    labelstudio_dataset(tmp_path)
    out = tmp_path / "out"
    run_export("--dataset", "mixed", "--format", "voc", "--out", str(out))

    run_export("--dataset", "mixed", "--format", "labelstudio", "--out", str(out), "--overwrite")

    assert sorted(path.name for path in out.iterdir()) == [
        ".loupe-export",
        "images",
        "labeling_config.xml",
        "tasks.json",
    ]


def test_the_command_takes_a_prediction_model_only_for_labelstudio(tmp_path):
    labelstudio_dataset(tmp_path)
    out = str(tmp_path / "out")

    with pytest.raises(CommandError, match="needs --format labelstudio"):
        run_export("--dataset", "mixed", "--format", "coco", "--out", out, "--predictions-model", "tiny:1")
    with pytest.raises(CommandError, match="no registered model 'ghost:1'"):
        run_export(
            "--dataset", "mixed", "--format", "labelstudio", "--out", out, "--predictions-model", "ghost:1"
        )


def test_the_command_fills_predictions_from_a_registered_model(tmp_path, make_model_version):
    make_model_version(name="tiny", version=1)
    dataset = synthetic_dataset(tmp_path, name="screens", format="coco", count=4)
    out = tmp_path / "out"

    output = run_export(
        "--dataset", "screens", "--format", "labelstudio", "--out", str(out), "--predictions-model", "tiny:1"
    )

    tasks = json.loads((out / "tasks.json").read_text())
    assert len(tasks) == 4 and "4 with predictions" in output
    for task in tasks:
        [prediction] = task["predictions"]
        assert prediction["model_version"] == "tiny:1"
        for result in prediction["result"]:
            assert result["type"] == "rectanglelabels" and 0 <= result["score"] <= 1
            assert result["value"]["rectanglelabels"][0] in {"crack", "scratch"}
            assert 0 <= result["value"]["x"] <= result["value"]["x"] + result["value"]["width"] <= 100
    dataset_import(path=out, name="screens-again", format="labelstudio")
    assert_same_labels(labels_by_image("screens-again"), labels_by_image(dataset.name), pixels=1e-9)


def test_the_admin_action_downloads_a_zip(tmp_path, admin_client):
    dataset = labelstudio_dataset(tmp_path)

    response = admin_client.post(
        "/admin/labeling/dataset/", {"action": "export_yolo", "_selected_action": [dataset.pk]}
    )

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="mixed-yolo.zip"'
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
        names = set(archive.namelist())
    assert {
        "mixed-yolo/data.yaml",
        "mixed-yolo/.loupe-export",
        "mixed-yolo/images/unassigned/shapes.jpg",
    } <= names
