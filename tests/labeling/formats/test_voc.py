import pytest
from django.core.management.base import CommandError

from labeling.models import Annotation, Dataset
from labeling.services import dataset_import
from tests.labeling.formats.factories import (
    annotations_of,
    import_dataset,
    row_counts,
    stored_files,
    voc_xml,
    write_image,
    write_text,
    write_truncated_jpeg,
)
from tests.labeling.formats.roundtrip import (
    assert_same_labels,
    export_and_reimport,
    labels_by_image,
    labelstudio_dataset,
    sha256_of,
)

pytestmark = pytest.mark.django_db


def make_neu_layout(root):
    write_image(root / "IMAGES" / "scratch_1.jpg", size=(40, 30), seed=1)
    write_text(
        root / "ANNOTATIONS" / "scratch_1.xml",
        voc_xml("scratch_1.jpg", (40, 30), [("scratches", (2, 3, 20, 25)), ("crazing", (0, 0, 40, 30))]),
    )
    write_image(root / "IMAGES" / "clean_1.jpg", size=(40, 30), seed=2)
    write_text(root / "ANNOTATIONS" / "clean_1.xml", voc_xml("clean_1.jpg", (40, 30), []))
    write_image(root / "Validation_Images" / "patch_9.jpg", size=(40, 30), seed=3)
    write_text(
        root / "Validation_Annotations" / "patch_9.xml",
        voc_xml("wrong_name.jpg", (40, 30), [("patches", (5, 5, 10, 10))]),
    )


def test_voc_neu_layout_imports_boxes_and_no_defect(tmp_path):
    make_neu_layout(tmp_path / "neu")

    output = import_dataset(tmp_path / "neu", name="neu", format="voc")

    dataset = Dataset.objects.get(name="neu")
    assert dataset.classes == ["crazing", "patches", "scratches"]
    assert dataset.source_format == "voc"
    assert annotations_of("neu", "IMAGES/scratch_1.jpg") == [("box", "scratches"), ("box", "crazing")]
    assert annotations_of("neu", "IMAGES/clean_1.jpg") == [("no_defect", "")]
    assert annotations_of("neu", "Validation_Images/patch_9.jpg") == [("box", "patches")]
    box = Annotation.objects.filter(label="scratches").get()
    assert box.geometry == {"x": 2.0, "y": 3.0, "width": 18.0, "height": 22.0}
    assert "images added: 3" in output
    assert "box 3" in output and "no_defect 1" in output


def test_voc_standard_layout_and_small_overshoot_is_clipped(tmp_path):
    root = tmp_path / "VOC2012"
    write_image(root / "JPEGImages" / "a.jpg", size=(50, 40), seed=4)
    write_text(root / "Annotations" / "a.xml", voc_xml("a.jpg", (50, 40), [("dent", (-1, 1, 51.5, 41))]))

    import_dataset(root, name="standard", format="voc")

    box = Annotation.objects.get()
    assert box.geometry == {"x": 0.0, "y": 1.0, "width": 50.0, "height": 39.0}


def make_bad_voc(root):
    write_image(root / "IMAGES" / "good.jpg", seed=10)
    write_text(root / "ANNOTATIONS" / "good.xml", voc_xml("good.jpg", (40, 30), [("dent", (1, 1, 9, 9))]))
    write_image(root / "IMAGES" / "unlabelled.jpg", seed=11)
    write_image(root / "IMAGES" / "broken_xml.jpg", seed=12)
    write_text(root / "ANNOTATIONS" / "broken_xml.xml", "<annotation><object>")
    write_image(root / "IMAGES" / "outside.jpg", seed=13)
    write_text(
        root / "ANNOTATIONS" / "outside.xml", voc_xml("outside.jpg", (40, 30), [("dent", (1, 1, 60, 9))])
    )
    write_image(root / "IMAGES" / "flat.jpg", seed=14)
    write_text(root / "ANNOTATIONS" / "flat.xml", voc_xml("flat.jpg", (40, 30), [("dent", (9, 1, 9, 9))]))
    write_text(root / "IMAGES" / "notes.jpg", "this is not an image")
    write_text(root / "ANNOTATIONS" / "notes.xml", voc_xml("notes.jpg", (40, 30), []))
    write_truncated_jpeg(root / "IMAGES" / "cut.jpg")
    write_text(root / "ANNOTATIONS" / "cut.xml", voc_xml("cut.jpg", (80, 60), []))
    write_text(root / "ANNOTATIONS" / "orphan.xml", voc_xml("orphan.jpg", (40, 30), []))


def test_voc_bad_files_abort_the_whole_import(tmp_path, media_root):
    make_bad_voc(tmp_path / "bad")

    with pytest.raises(CommandError) as raised:
        import_dataset(tmp_path / "bad", name="bad", format="voc")

    message = str(raised.value)
    assert "7 bad file(s)" in message
    assert "unlabelled.jpg: no annotation file" in message
    assert "broken_xml.xml: malformed XML" in message
    assert "outside.xml: object 1 (dent) box" in message and "outside the 40x30 image" in message
    assert "flat.xml: object 1 (dent) box" in message and "has no area" in message
    assert "notes.jpg: not an image" in message
    assert "cut.jpg: image cannot be decoded" in message
    assert "orphan.xml: no image for this annotation file" in message
    assert row_counts() == {"datasets": 0, "images": 0, "items": 0, "annotations": 0}
    assert stored_files(media_root) == []


def test_voc_skip_bad_imports_the_good_files(tmp_path):
    make_bad_voc(tmp_path / "bad")

    output = import_dataset(tmp_path / "bad", name="bad", format="voc", skip_bad=True)

    assert row_counts() == {"datasets": 1, "images": 1, "items": 1, "annotations": 1}
    assert annotations_of("bad", "IMAGES/good.jpg") == [("box", "dent")]
    assert "bad files skipped: 7" in output
    assert "Bad file skipped:" in output and "unlabelled.jpg: no annotation file" in output


def test_voc_size_in_xml_must_match_the_image(tmp_path):
    root = tmp_path / "voc"
    write_image(root / "JPEGImages" / "a.jpg", size=(50, 40))
    write_text(root / "Annotations" / "a.xml", voc_xml("a.jpg", (200, 200), [("dent", (1, 1, 9, 9))]))

    with pytest.raises(CommandError, match="says 200x200 but the image is 50x40"):
        import_dataset(root, name="sizes", format="voc")


def test_voc_without_known_folders_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()

    with pytest.raises(CommandError, match="no JPEGImages/ \\+ Annotations/"):
        import_dataset(tmp_path / "empty", name="empty", format="voc")


# --- Export round trip --------------------------------------------------------------------------


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
