import json

import numpy as np
import pytest
from django.core.management.base import CommandError

from labeling.formats import labelstudio
from labeling.formats.labelstudio import decode_brush_rle
from labeling.models import Annotation, Dataset, DatasetItem
from tests.labeling.formats.factories import (
    annotations_of,
    encode_brush_rle,
    import_dataset,
    labelstudio_result,
    mask_array,
    row_counts,
    stored_files,
    write_image,
    write_json,
    write_text,
)
from tests.labeling.formats.roundtrip import (
    assert_same_labels,
    export_and_reimport,
    labels_by_image,
    labelstudio_dataset,
    sha256_of,
    synthetic_dataset,
)

pytestmark = pytest.mark.django_db


def brush_mask():
    mask = np.zeros((20, 40), dtype=bool)
    mask[2:6, 3:30] = True
    mask[15, 7] = True
    mask[15, 9] = True
    return mask


def make_export(root):
    write_image(root / "images" / "boxes.jpg", size=(40, 20), seed=1)
    write_image(root / "images" / "cancel.jpg", size=(40, 20), seed=2)
    write_image(root / "upload.jpg", size=(40, 20), seed=3)
    write_image(root / "local" / "brush.png", size=(40, 20), seed=4, image_format="PNG")
    write_image(root / "images" / "fresh.jpg", size=(40, 20), seed=5)
    write_image(root / "images" / "ok.jpg", size=(40, 20), seed=6)
    tasks = [
        {
            "id": 1,
            "data": {"image": "images/boxes.jpg"},
            "annotations": [
                {
                    "was_cancelled": False,
                    "result": [
                        labelstudio_result(
                            "rectanglelabels",
                            {
                                "x": 25,
                                "y": 10,
                                "width": 50,
                                "height": 40,
                                "rotation": 0,
                                "rectanglelabels": ["scratch"],
                            },
                        ),
                        labelstudio_result(
                            "polygonlabels",
                            {"points": [[10, 10], [50, 10], [50, 50]], "polygonlabels": ["dent"]},
                        ),
                        labelstudio_result("relation", {}),
                    ],
                }
            ],
            "predictions": [{"result": [labelstudio_result("choices", {"choices": ["bogus"]})]}],
        },
        {
            "id": 2,
            "data": {"image": "/data/local-files/?d=images/cancel.jpg"},
            "annotations": [
                {"was_cancelled": True, "result": [labelstudio_result("choices", {"choices": ["crack"]})]},
                {"was_cancelled": False, "result": [labelstudio_result("choices", {"choices": ["chip"]})]},
            ],
        },
        {
            "id": 3,
            "data": {"image": "/data/upload/4/1a2b3c4d-upload.jpg"},
            "annotations": [{"result": [labelstudio_result("choices", {"choices": ["No defect"]})]}],
        },
        {
            "id": 4,
            "data": {"image": "/data/local-files/?d=local%2Fbrush.png"},
            "annotations": [
                {
                    "result": [
                        labelstudio_result(
                            "brushlabels",
                            {
                                "format": "rle",
                                "rle": encode_brush_rle(brush_mask()),
                                "brushlabels": ["stain"],
                            },
                        )
                    ]
                }
            ],
        },
        {"id": 5, "data": {"image": "images/fresh.jpg"}, "annotations": []},
        {
            "id": 6,
            "data": {"image": "http://example.com/media/ok.jpg"},
            "annotations": [{"result": [labelstudio_result("choices", {"choices": ["PASS"]})]}],
        },
    ]
    return write_json(root / "export.json", tasks)


def test_brush_rle_roundtrip():
    mask = np.random.default_rng(0).random((13, 11)) > 0.6

    assert np.array_equal(decode_brush_rle(encode_brush_rle(mask), 13, 11), mask)


def test_labelstudio_export_imports_every_result_type(tmp_path):
    make_export(tmp_path / "ls")

    output = import_dataset(tmp_path / "ls", name="ls", format="labelstudio")

    assert Dataset.objects.get(name="ls").classes == ["chip", "dent", "scratch", "stain"]
    assert annotations_of("ls", "images/boxes.jpg") == [("box", "scratch"), ("polygon", "dent")]
    assert annotations_of("ls", "/data/local-files/?d=images/cancel.jpg") == [("class", "chip")]
    assert annotations_of("ls", "/data/upload/4/1a2b3c4d-upload.jpg") == [("no_defect", "")]
    assert annotations_of("ls", "/data/local-files/?d=local%2Fbrush.png") == [("mask", "stain")]
    assert annotations_of("ls", "images/fresh.jpg") == []
    assert annotations_of("ls", "http://example.com/media/ok.jpg") == [("no_defect", "")]
    box = Annotation.objects.get(kind="box")
    assert box.geometry == {"x": 10.0, "y": 2.0, "width": 20.0, "height": 8.0}
    polygon = Annotation.objects.get(kind="polygon")
    assert polygon.geometry == {"points": [[4.0, 2.0], [20.0, 2.0], [20.0, 10.0]]}
    assert np.array_equal(mask_array(Annotation.objects.get(kind="mask")) == 255, brush_mask())
    assert DatasetItem.objects.filter(dataset__name="ls").count() == 6
    assert "bad files skipped: 0" in output


def test_rotated_rectangle_becomes_a_polygon_with_its_box(tmp_path):
    root = tmp_path / "ls"
    write_image(root / "a.jpg", size=(100, 100))
    value = {"x": 10, "y": 10, "width": 20, "height": 10, "rotation": 90, "rectanglelabels": ["scratch"]}
    write_json(
        root / "export.json",
        [
            {
                "data": {"image": "a.jpg"},
                "annotations": [{"result": [labelstudio_result("rectanglelabels", value, 100, 100)]}],
            }
        ],
    )

    import_dataset(root, name="rotated", format="labelstudio")

    polygon = Annotation.objects.get(kind="polygon")
    assert np.allclose(polygon.geometry["points"], [[10, 10], [10, 30], [0, 30], [0, 10]])
    box = Annotation.objects.get(kind="box")
    assert box.geometry == pytest.approx({"x": 0.0, "y": 10.0, "width": 10.0, "height": 20.0})


def test_labelstudio_bad_tasks_are_named(tmp_path, media_root):
    root = tmp_path / "ls"
    make_export(root)
    write_image(root / "wide.jpg", size=(40, 20), seed=9)
    write_text(root / "fake.jpg", "<html>not an image</html>")
    tasks = [
        {"id": 10, "data": {"image": "missing.jpg"}},
        {"id": 11, "data": {"image": "fake.jpg"}},
        {
            "id": 12,
            "data": {"image": "wide.jpg"},
            "annotations": [
                {
                    "result": [
                        labelstudio_result(
                            "rectanglelabels",
                            {"x": 90, "y": 0, "width": 50, "height": 10, "rectanglelabels": ["x"]},
                        )
                    ]
                }
            ],
        },
        {
            "id": 13,
            "data": {"image": "wide.jpg"},
            "annotations": [
                {
                    "result": [
                        labelstudio_result(
                            "brushlabels",
                            {
                                "format": "rle",
                                "rle": encode_brush_rle(np.zeros((5, 5), dtype=bool)),
                                "brushlabels": ["x"],
                            },
                        )
                    ]
                }
            ],
        },
        {"id": 14, "data": {}},
    ]
    write_json(root / "export.json", tasks)

    with pytest.raises(CommandError) as raised:
        import_dataset(root, name="ls", format="labelstudio")

    message = str(raised.value)
    assert "5 bad file(s)" in message
    assert "missing.jpg: task 10: image file not found" in message
    assert "fake.jpg: task 11: not an image" in message
    assert "wide.jpg: task 12: rectangle" in message and "outside the 40x20 image" in message
    assert "wide.jpg: task 13: brush mask holds 100 values, a 40x20 RGBA image needs 3200" in message
    assert "export.json: task 14: no data.image" in message
    assert row_counts() == {"datasets": 0, "images": 0, "items": 0, "annotations": 0}
    assert stored_files(media_root) == []


def test_malformed_labelstudio_json_is_named(tmp_path):
    write_text(tmp_path / "ls" / "export.json", "[{")

    with pytest.raises(CommandError, match="export.json: not a readable JSON file"):
        import_dataset(tmp_path / "ls", name="ls", format="labelstudio")


# --- Export round trip --------------------------------------------------------------------------


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


def test_brush_rle_encoding_decodes_to_the_same_mask():
    random_mask = np.random.default_rng(0).random((13, 11)) > 0.6
    full_mask = np.ones((200, 100), dtype=bool)  # runs longer than one chunk

    for mask in (random_mask, full_mask):
        assert np.array_equal(decode_brush_rle(labelstudio.encode_brush_rle(mask), *mask.shape), mask)
