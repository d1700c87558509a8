import pytest
import yaml
from django.core.management.base import CommandError

from labeling.models import Annotation, Dataset
from labeling.services import dataset_import
from tests.labeling.formats.factories import (
    annotations_of,
    import_dataset,
    row_counts,
    stored_files,
    write_image,
    write_text,
)
from tests.labeling.formats.roundtrip import (
    assert_same_labels,
    export_and_reimport,
    labels_by_image,
    synthetic_dataset,
)

pytestmark = pytest.mark.django_db


def make_yolo(root):
    write_text(root / "classes.txt", "scratch\ndent\n")
    write_image(root / "images" / "train" / "a.jpg", size=(40, 20), seed=1)
    write_text(root / "labels" / "train" / "a.txt", "0 0.5 0.5 0.5 0.5\n1 0.25 0.25 0.1 0.1\n")
    write_image(root / "images" / "train" / "empty.jpg", seed=2)
    write_text(root / "labels" / "train" / "empty.txt", "")
    write_image(root / "images" / "val" / "nolabel.jpg", seed=3)
    write_image(root / "images" / "val" / "seg.jpg", size=(40, 20), seed=4)
    write_text(root / "labels" / "val" / "seg.txt", "1 0.1 0.1 0.5 0.1 0.5 0.5\n")


def test_yolo_boxes_polygons_and_backgrounds(tmp_path):
    make_yolo(tmp_path / "yolo")

    import_dataset(tmp_path / "yolo", name="yolo", format="yolo")

    assert Dataset.objects.get(name="yolo").classes == ["scratch", "dent"]  # the names file order
    assert annotations_of("yolo", "images/train/a.jpg") == [("box", "scratch"), ("box", "dent")]
    assert annotations_of("yolo", "images/train/empty.jpg") == [("no_defect", "")]
    assert annotations_of("yolo", "images/val/nolabel.jpg") == [("no_defect", "")]
    assert annotations_of("yolo", "images/val/seg.jpg") == [("polygon", "dent"), ("box", "dent")]
    box = Annotation.objects.get(kind="box", label="scratch")
    assert box.geometry == {"x": 10.0, "y": 5.0, "width": 20.0, "height": 10.0}
    polygon = Annotation.objects.get(kind="polygon")
    assert polygon.geometry == {"points": [[4.0, 2.0], [20.0, 2.0], [20.0, 10.0]]}
    seg_box = Annotation.objects.get(kind="box", item__source_name="images/val/seg.jpg")
    assert seg_box.geometry == {"x": 4.0, "y": 2.0, "width": 16.0, "height": 8.0}


def test_yolo_names_from_data_yaml_mapping_and_split_folders(tmp_path):
    root = tmp_path / "yolo"
    write_text(root / "data.yaml", "path: .\nnames:\n  0: crack\n  1: chip\n")
    write_image(root / "train" / "images" / "a.png", seed=1, image_format="PNG")
    write_text(root / "train" / "labels" / "a.txt", "1 0.5 0.5 0.2 0.2\n")
    write_image(root / "valid" / "images" / "b.png", seed=2, image_format="PNG")

    import_dataset(root, name="yolo", format="yolo")

    assert Dataset.objects.get(name="yolo").classes == ["crack", "chip"]  # the names order
    assert annotations_of("yolo", "train/images/a.png") == [("box", "chip")]
    assert annotations_of("yolo", "valid/images/b.png") == [("no_defect", "")]


def test_yolo_bad_lines_are_named(tmp_path, media_root):
    root = tmp_path / "yolo"
    make_yolo(root)
    write_image(root / "images" / "train" / "unknown.jpg", seed=5)
    write_text(root / "labels" / "train" / "unknown.txt", "7 0.5 0.5 0.1 0.1\n")
    write_image(root / "images" / "train" / "outside.jpg", seed=6)
    write_text(root / "labels" / "train" / "outside.txt", "0 0.9 0.5 0.5 0.5\n")
    write_image(root / "images" / "train" / "short.jpg", seed=7)
    write_text(root / "labels" / "train" / "short.txt", "0 0.5 0.5\n")
    write_text(root / "labels" / "train" / "orphan.txt", "0 0.5 0.5 0.1 0.1\n")

    with pytest.raises(CommandError) as raised:
        import_dataset(root, name="yolo", format="yolo")

    message = str(raised.value)
    assert "4 bad file(s)" in message
    assert "unknown.txt: line 1: unknown class id 7" in message
    assert "outside.txt: line 1 box" in message and "outside the 40x30 image" in message
    assert "short.txt: line 1: expected 'class cx cy w h'" in message
    assert "orphan.txt: no image for this label file" in message
    assert row_counts() == {"datasets": 0, "images": 0, "items": 0, "annotations": 0}
    assert stored_files(media_root) == []


def test_yolo_without_class_names_is_a_clear_error(tmp_path):
    write_image(tmp_path / "yolo" / "images" / "a.jpg")

    with pytest.raises(CommandError, match="no classes.txt, obj.names or data.yaml"):
        import_dataset(tmp_path / "yolo", name="yolo", format="yolo")


def test_an_empty_names_file_imports_background_images_only(tmp_path):
    root = tmp_path / "yolo"
    write_text(root / "classes.txt", "")
    write_image(root / "images" / "a.jpg", size=(40, 20), seed=1)
    write_text(root / "labels" / "a.txt", "")

    summary = dataset_import(path=root, name="all-good", format="yolo")

    assert summary.classes == [] and summary.annotations_by_kind == {"no_defect": 1}


def test_classes_keep_the_names_files_order(tmp_path):
    root = tmp_path / "yolo"
    write_text(root / "classes.txt", "scratch\ncrack\nchip\n")
    write_image(root / "images" / "a.jpg", size=(40, 20), seed=1)
    write_text(root / "labels" / "a.txt", "2 0.5 0.5 0.2 0.2\n")

    assert dataset_import(path=root, name="ordered", format="yolo").classes == ["scratch", "crack", "chip"]


# --- Export round trip --------------------------------------------------------------------------


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


def test_a_yolo_export_without_classes_still_imports(tmp_path):
    write_image(tmp_path / "folders" / "good" / "a.jpg", seed=1)
    dataset_import(path=tmp_path / "folders", name="all-good", format="folders")

    export_and_reimport(Dataset.objects.get(name="all-good"), "yolo", tmp_path)

    assert labels_by_image("all-good-yolo") == labels_by_image("all-good")
    assert Dataset.objects.get(name="all-good-yolo").classes == []
