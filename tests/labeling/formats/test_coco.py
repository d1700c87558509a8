import numpy as np
import pytest
from django.core.management.base import CommandError

from labeling.formats.coco import decode_rle
from labeling.models import Annotation, Dataset, DatasetItem
from tests.labeling.formats.factories import (
    annotations_of,
    encode_coco_rle_string,
    import_dataset,
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
    synthetic_dataset,
)

pytestmark = pytest.mark.django_db


def blob_mask():
    mask = np.zeros((30, 40), dtype=bool)
    mask[4:9, 10:30] = True
    mask[20, 5] = True
    return mask


def make_coco(root, *, extra_annotations=()):
    write_image(root / "images" / "a.jpg", seed=1)
    write_image(root / "b.jpg", seed=2)
    write_image(root / "images" / "c.jpg", seed=3)
    write_image(root / "images" / "d.jpg", seed=4)
    runs, compressed = encode_coco_rle_string(blob_mask())
    document = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 40, "height": 30},
            {"id": 2, "file_name": "b.jpg", "width": 40, "height": 30},
            {"id": 3, "file_name": "c.jpg", "width": 40, "height": 30},
            {"id": 4, "file_name": "d.jpg", "width": 40, "height": 30},
        ],
        "categories": [{"id": 7, "name": "scratch"}, {"id": 8, "name": "dent"}, {"id": 9, "name": "unused"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [2, 3, 10, 5], "iscrowd": 0},
            {
                "id": 2,
                "image_id": 1,
                "category_id": 8,
                "bbox": [10, 10, 10, 10],
                "segmentation": [[10, 10, 20, 10, 20, 20]],
                "iscrowd": 0,
            },
            {
                "id": 3,
                "image_id": 3,
                "category_id": 8,
                "bbox": [5, 4, 25, 17],
                "segmentation": {"size": [30, 40], "counts": runs},
                "iscrowd": 1,
            },
            {
                "id": 4,
                "image_id": 4,
                "category_id": 7,
                "bbox": [5, 4, 25, 17],
                "segmentation": {"size": [30, 40], "counts": compressed},
                "iscrowd": 1,
            },
            *extra_annotations,
        ],
    }
    return write_json(root / "instances.json", document)


def test_coco_boxes_polygons_rle_and_no_defect(tmp_path):
    make_coco(tmp_path / "coco")

    import_dataset(tmp_path / "coco", name="coco", format="coco")

    assert Dataset.objects.get(name="coco").classes == ["scratch", "dent", "unused"]  # the categories order
    assert annotations_of("coco", "a.jpg") == [("box", "scratch"), ("box", "dent"), ("polygon", "dent")]
    assert annotations_of("coco", "b.jpg") == [("no_defect", "")]
    assert annotations_of("coco", "c.jpg") == [("box", "dent"), ("mask", "dent")]
    assert annotations_of("coco", "d.jpg") == [("box", "scratch"), ("mask", "scratch")]
    box = Annotation.objects.get(kind="box", label="scratch", item__source_name="a.jpg")
    assert box.geometry == {"x": 2.0, "y": 3.0, "width": 10.0, "height": 5.0}
    polygon = Annotation.objects.get(kind="polygon")
    assert polygon.geometry == {"points": [[10.0, 10.0], [20.0, 10.0], [20.0, 20.0]]}
    for mask in Annotation.objects.filter(kind="mask"):
        assert np.array_equal(mask_array(mask) == 255, blob_mask())


def test_compressed_rle_matches_the_uncompressed_runs():
    mask = np.random.default_rng(3).random((17, 23)) > 0.7
    runs, compressed = encode_coco_rle_string(mask)

    assert np.array_equal(decode_rle({"size": [17, 23], "counts": runs}, 17, 23), mask)
    assert np.array_equal(decode_rle({"size": [17, 23], "counts": compressed}, 17, 23), mask)


def test_coco_json_given_directly(tmp_path):
    json_path = make_coco(tmp_path / "coco")
    write_text(tmp_path / "coco" / "notes.txt", "other files are ignored")

    import_dataset(json_path, name="direct", format="coco")

    assert row_counts()["items"] == 4


def test_coco_bad_entries_are_named(tmp_path, media_root):
    extra = [
        {"id": 10, "image_id": 2, "category_id": 99, "bbox": [1, 1, 2, 2]},
        {"id": 11, "image_id": 1, "category_id": 7, "bbox": [30, 1, 20, 5]},
        {"id": 12, "image_id": 42, "category_id": 7, "bbox": [1, 1, 2, 2]},
    ]
    root = tmp_path / "coco"
    make_coco(root, extra_annotations=extra)

    with pytest.raises(CommandError) as raised:
        import_dataset(root, name="coco", format="coco")

    message = str(raised.value)
    assert "3 bad file(s)" in message
    assert "b.jpg: annotation 10: unknown category_id 99" in message
    assert "a.jpg: bbox [30, 1, 20, 5]" in message and "outside the 40x30 image" in message
    assert "instances.json: annotation 12: unknown image_id 42" in message
    assert row_counts() == {"datasets": 0, "images": 0, "items": 0, "annotations": 0}
    assert stored_files(media_root) == []

    import_dataset(root, name="coco", format="coco", skip_bad=True)

    assert row_counts()["items"] == 2


def test_coco_missing_image_file_is_bad(tmp_path):
    root = tmp_path / "coco"
    write_json(
        root / "a.json",
        {"images": [{"id": 1, "file_name": "gone.jpg"}], "categories": [], "annotations": []},
    )

    with pytest.raises(CommandError, match="gone.jpg: image file not found"):
        import_dataset(root, name="coco", format="coco")


def test_malformed_coco_json_is_named(tmp_path):
    write_text(tmp_path / "coco" / "broken.json", '{"images": [')

    with pytest.raises(CommandError, match="broken.json: not a readable JSON file"):
        import_dataset(tmp_path / "coco", name="coco", format="coco")
    assert row_counts()["datasets"] == 0


def test_folder_with_several_json_files_is_ambiguous(tmp_path):
    write_json(tmp_path / "coco" / "train.json", {"images": []})
    write_json(tmp_path / "coco" / "val.json", {"images": []})

    with pytest.raises(CommandError, match="several JSON files"):
        import_dataset(tmp_path / "coco", name="coco", format="coco")


# --- Export round trip ---------------------------------------------------------------------------


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
