import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from labeling.exporters.labelstudio import encode_brush_rle
from labeling.exporters.services import DatasetExportError, dataset_export
from labeling.importers.labelstudio import decode_brush_rle
from labeling.models import Annotation, Dataset, DatasetItem
from labeling.services import dataset_import
from models_registry.ml.synthetic.config import SyntheticConfig
from models_registry.ml.synthetic.writing import write_dataset
from tests.inspection import conftest as inspection_fixtures
from tests.labeling import factories
from tests.labeling.factories import (
    labelstudio_result,
    mask_array,
    voc_xml,
    write_image,
    write_json,
    write_text,
)

pytestmark = pytest.mark.django_db

SMALL = SyntheticConfig(width=160, height=90)

# The inspection tests' tiny registered model (trained once per session), for --predictions-model.
tiny_bundle = inspection_fixtures.tiny_bundle
make_model_version = inspection_fixtures.make_model_version


# --- Given: data sets built through the importers ------------------------------------------------


def synthetic_dataset(tmp_path, *, name, format, count=10, seed=6):
    """Generated phone screens (boxes and masks, or masks and classes); seed 6 draws every class."""
    write_dataset(tmp_path / f"generated-{name}", count, seed=seed, config=SMALL, format=format)
    dataset_import(path=tmp_path / f"generated-{name}", name=name, format=format)
    return Dataset.objects.get(name=name)


def stain_mask():
    mask = np.zeros((20, 40), dtype=bool)
    mask[3:9, 5:25] = True
    mask[15, 30] = True
    return mask


def labelstudio_dataset(tmp_path, *, name="mixed"):
    """Every kind of label: a fractional box and a polygon, a brush mask, an image-level class
    without a location, "no defect", and an unlabeled image."""
    root = tmp_path / f"ls-{name}"
    for seed, stem in enumerate(("shapes", "brush", "class-only", "good", "unlabeled"), start=1):
        write_image(root / "images" / f"{stem}.jpg", size=(40, 20), seed=seed)
    rectangle = {"x": 12.5, "y": 10, "width": 50.25, "height": 40, "rectanglelabels": ["scratch"]}
    polygon = {"points": [[10, 10], [52.5, 12], [50, 55]], "polygonlabels": ["dent"]}
    brush = {"format": "rle", "rle": factories.encode_brush_rle(stain_mask()), "brushlabels": ["stain"]}
    tasks = [
        (
            "shapes",
            [labelstudio_result("rectanglelabels", rectangle), labelstudio_result("polygonlabels", polygon)],
        ),
        ("brush", [labelstudio_result("brushlabels", brush)]),
        ("class-only", [labelstudio_result("choices", {"choices": ["chip"]})]),
        ("good", [labelstudio_result("choices", {"choices": ["no defect"]})]),
        ("unlabeled", []),
    ]
    write_json(
        root / "export.json",
        [
            {"id": number, "data": {"image": f"images/{stem}.jpg"}, "annotations": [{"result": results}]}
            for number, (stem, results) in enumerate(tasks, start=1)
        ],
    )
    dataset_import(path=root, name=name, format="labelstudio")
    return Dataset.objects.get(name=name)


def sha256_of(source_name, dataset):
    return DatasetItem.objects.get(dataset=dataset, source_name=source_name).image.sha256


# --- When: export, then import the export ------------------------------------------------------


def export_and_reimport(dataset, format, tmp_path, **options):
    out = tmp_path / f"export-{dataset.name}-{format}"
    summary = dataset_export(dataset=dataset, format=format, out=out, **options)
    dataset_import(path=out, name=f"{dataset.name}-{format}", format=format)
    return summary, out


# --- Then: the same images and equivalent labels -------------------------------------------------


def mask_digest(annotation):
    return hashlib.sha256(np.packbits(mask_array(annotation) >= 128).tobytes()).hexdigest()[:16]


def labels_by_image(name):
    """Per image hash, its labels as sorted (kind, label, numbers, mask digest) tuples."""
    labels = {}
    for item in DatasetItem.objects.filter(dataset__name=name).select_related("image"):
        rows = []
        for annotation in Annotation.objects.filter(item=item):
            geometry = annotation.geometry
            numbers = ()
            if annotation.kind == "box":
                numbers = (geometry["x"], geometry["y"], geometry["width"], geometry["height"])
            elif annotation.kind == "polygon":
                numbers = tuple(value for point in geometry["points"] for value in point)
            digest = mask_digest(annotation) if annotation.kind == "mask" else ""
            rows.append((annotation.kind, annotation.label, numbers, digest))
        labels[item.image.sha256] = sorted(rows, key=lambda row: (row[0], row[1], [round(n) for n in row[2]]))
    return labels


def assert_same_labels(actual, expected, *, pixels):
    assert set(actual) == set(expected)
    for sha256, expected_rows in expected.items():
        actual_rows = actual[sha256]
        assert [row[:2] for row in actual_rows] == [row[:2] for row in expected_rows], sha256
        for actual_row, expected_row in zip(actual_rows, expected_rows, strict=True):
            assert actual_row[2] == pytest.approx(expected_row[2], abs=pixels), (sha256, actual_row[:2])
            assert actual_row[3] == expected_row[3], (sha256, actual_row[:2])


def run_export(*arguments):
    output = io.StringIO()
    call_command("export_dataset", *arguments, stdout=output)
    return output.getvalue()


# --- Round trips, format by format ---------------------------------------------------------------


def test_coco_round_trip_gives_back_the_images_boxes_and_masks_pixel_exact(tmp_path):
    dataset = synthetic_dataset(tmp_path, name="screens", format="coco")

    summary, _ = export_and_reimport(dataset, "coco", tmp_path)

    assert_same_labels(labels_by_image("screens-coco"), labels_by_image("screens"), pixels=1e-9)
    assert summary.images == 10
    assert summary.left_out == {} and summary.approximated == {}
    assert Dataset.objects.get(name="screens-coco").classes == dataset.classes  # the order is kept


def test_coco_export_of_mask_folders_gives_each_mask_its_box(tmp_path):
    dataset = synthetic_dataset(tmp_path, name="tiles", format="masks")
    defective = DatasetItem.objects.filter(dataset=dataset, annotations__kind="mask").count()

    summary, _ = export_and_reimport(dataset, "coco", tmp_path)

    copied = labels_by_image("tiles-coco")
    original = labels_by_image("tiles")
    assert set(copied) == set(original)
    for sha256, rows in original.items():
        masks = [row for row in rows if row[0] == "mask"]
        assert [row for row in copied[sha256] if row[0] == "mask"] == masks
        assert [row[:2] for row in copied[sha256] if row[0] == "box"] == [("box", row[1]) for row in masks]
        if not masks:
            assert copied[sha256] == [("no_defect", "", (), "")]
    assert summary.approximated == {
        "box added to a mask without one (COCO needs a bbox)": defective,
        "image-level class dropped (implied by its located defects)": defective,
    }


def test_labelstudio_round_trip_is_lossless(tmp_path):
    dataset = labelstudio_dataset(tmp_path)

    summary, out = export_and_reimport(dataset, "labelstudio", tmp_path)

    assert_same_labels(labels_by_image("mixed-labelstudio"), labels_by_image("mixed"), pixels=1e-9)
    unlabeled = sha256_of("images/unlabeled.jpg", dataset)
    assert not DatasetItem.objects.get(
        dataset__name="mixed-labelstudio", image__sha256=unlabeled
    ).annotations.exists()
    assert (summary.images, summary.no_defect, summary.unlabeled, summary.left_out) == (5, 1, 1, {})
    config = (out / "labeling_config.xml").read_text()
    assert '<Choice value="chip"/>' in config and '<Label value="stain"/>' in config


def test_labelstudio_round_trip_of_mask_folders_keeps_masks_and_classes(tmp_path):
    dataset = synthetic_dataset(tmp_path, name="tiles", format="masks")

    export_and_reimport(dataset, "labelstudio", tmp_path)

    assert_same_labels(labels_by_image("tiles-labelstudio"), labels_by_image("tiles"), pixels=1e-9)


def test_labelstudio_export_writes_predictions_that_the_importer_ignores(tmp_path):
    dataset = labelstudio_dataset(tmp_path)
    shapes, good = sha256_of("images/shapes.jpg", dataset), sha256_of("images/good.jpg", dataset)
    predictions = {
        shapes: [
            {"x": 4, "y": 2, "width": 20, "height": 10, "label": "scratch", "score": 0.9},
            {"x": 30, "y": 10, "width": 20, "height": 20, "label": "crack", "score": 0.4},
        ],
        good: [],
    }

    summary, out = export_and_reimport(
        dataset, "labelstudio", tmp_path, predictions_for=predictions, predictions_model_version="tiny:3"
    )

    tasks = {
        task["data"]["image"].rsplit("/", 1)[-1]: task
        for task in json.loads((out / "tasks.json").read_text())
    }
    [prediction] = tasks["shapes.jpg"]["predictions"]
    assert prediction["model_version"] == "tiny:3"
    assert prediction["score"] == 0.9
    scratch, crack = prediction["result"]
    assert scratch["type"] == "rectanglelabels" and scratch["score"] == 0.9
    assert scratch["value"] == {
        "x": 10.0,
        "y": 10.0,
        "width": 50.0,
        "height": 50.0,
        "rotation": 0,
        "rectanglelabels": ["scratch"],
    }
    assert crack["value"]["width"] == pytest.approx(25.0)  # clipped to the 40 px wide image
    assert crack["value"]["height"] == pytest.approx(50.0)
    assert tasks["good.jpg"]["predictions"] == [{"model_version": "tiny:3", "result": []}]
    assert "predictions" not in tasks["brush.jpg"]
    assert summary.with_predictions == 2
    assert '<Label value="crack"/>' in (out / "labeling_config.xml").read_text()
    assert_same_labels(labels_by_image("mixed-labelstudio"), labels_by_image("mixed"), pixels=1e-9)


def test_labelstudio_export_takes_predictions_from_a_callable(tmp_path):
    dataset = labelstudio_dataset(tmp_path)
    seen = []

    def predictions_for(item):
        seen.append(item.source_name)
        return [{"x": 0, "y": 0, "width": 4, "height": 2, "label": "dent", "score": 0.5}]

    summary, out = export_and_reimport(dataset, "labelstudio", tmp_path, predictions_for=predictions_for)

    tasks = json.loads((out / "tasks.json").read_text())
    assert all(task["predictions"][0]["result"][0]["value"]["width"] == 10.0 for task in tasks)
    assert len(seen) == summary.with_predictions == 5


def test_yolo_round_trip_gives_back_boxes_polygons_and_background_images(tmp_path):
    root = tmp_path / "yolo"
    write_text(root / "classes.txt", "scratch\ndent\n")
    write_image(root / "images" / "a.jpg", size=(40, 20), seed=1)
    write_text(root / "labels" / "a.txt", "0 0.5 0.5 0.5 0.5\n1 0.1 0.1 0.5 0.1 0.45 0.55 0.2 0.5\n")
    write_image(root / "images" / "empty.png", seed=2, image_format="PNG")
    write_text(root / "labels" / "empty.txt", "")
    write_image(root / "images" / "nolabel.jpg", seed=3)
    dataset_import(path=root, name="parts", format="yolo")
    dataset = Dataset.objects.get(name="parts")

    summary, out = export_and_reimport(dataset, "yolo", tmp_path)

    assert_same_labels(labels_by_image("parts-yolo"), labels_by_image("parts"), pixels=1e-4)
    assert yaml.safe_load((out / "data.yaml").read_text())["names"] == {0: "scratch", 1: "dent"}  # file order
    assert (summary.images, summary.no_defect, summary.approximated) == (3, 2, {})


def test_yolo_export_writes_masks_as_their_boxes(tmp_path):
    dataset = synthetic_dataset(tmp_path, name="screens", format="coco")

    summary, _ = export_and_reimport(dataset, "yolo", tmp_path)

    original = labels_by_image("screens")
    without_masks = {sha256: [row for row in rows if row[0] != "mask"] for sha256, rows in original.items()}
    assert_same_labels(labels_by_image("screens-yolo"), without_masks, pixels=1e-3)
    masks = sum(row[0] == "mask" for rows in original.values() for row in rows)
    assert summary.approximated == {"mask dropped (the box stored with it is kept)": masks}


def test_voc_round_trip_gives_back_boxes_and_no_defect_images(tmp_path):
    root = tmp_path / "voc"
    write_image(root / "JPEGImages" / "a.jpg", seed=1)
    write_text(
        root / "Annotations" / "a.xml",
        voc_xml("a.jpg", (40, 30), [("crack", (2, 3, 12, 9)), ("chip", (20, 1, 39, 29))]),
    )
    write_image(root / "JPEGImages" / "b.jpg", seed=2)
    write_text(root / "Annotations" / "b.xml", voc_xml("b.jpg", (40, 30), []))
    dataset_import(path=root, name="plates", format="voc")
    dataset = Dataset.objects.get(name="plates")

    summary, out = export_and_reimport(dataset, "voc", tmp_path)

    assert_same_labels(labels_by_image("plates-voc"), labels_by_image("plates"), pixels=0)
    assert (summary.images, summary.no_defect) == (2, 1)
    assert "<depth>1</depth>" in (out / "Annotations" / "a.xml").read_text()


def test_voc_export_rounds_to_whole_pixels_and_writes_shapes_as_boxes(tmp_path):
    dataset = labelstudio_dataset(tmp_path)

    summary, _ = export_and_reimport(dataset, "voc", tmp_path)

    copied = labels_by_image("mixed-voc")
    shapes = copied[sha256_of("images/shapes.jpg", dataset)]
    assert [row[:3] for row in shapes] == [
        ("box", "dent", (4.0, 2.0, 17.0, 9.0)),  # the polygon (4, 2)-(21, 11) as its box
        ("box", "scratch", (5.0, 2.0, 20.0, 8.0)),  # (5, 2, 20.1, 8) rounded
    ]
    brush = copied[sha256_of("images/brush.jpg", dataset)]
    assert [row[:3] for row in brush] == [("box", "stain", (5.0, 3.0, 26.0, 13.0))]
    assert summary.approximated == {
        "mask written as its bounding box": 1,
        "polygon written as its bounding box": 1,
    }


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


def test_a_yolo_export_without_classes_still_imports(tmp_path):
    write_image(tmp_path / "folders" / "good" / "a.jpg", seed=1)
    dataset_import(path=tmp_path / "folders", name="all-good", format="folders")

    export_and_reimport(Dataset.objects.get(name="all-good"), "yolo", tmp_path)

    assert labels_by_image("all-good-yolo") == labels_by_image("all-good")
    assert Dataset.objects.get(name="all-good-yolo").classes == []


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


def test_brush_rle_encoding_decodes_to_the_same_mask():
    random_mask = np.random.default_rng(0).random((13, 11)) > 0.6
    full_mask = np.ones((200, 100), dtype=bool)  # runs longer than one chunk

    for mask in (random_mask, full_mask):
        assert np.array_equal(decode_brush_rle(encode_brush_rle(mask), *mask.shape), mask)


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
