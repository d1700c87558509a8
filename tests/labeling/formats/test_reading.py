"""The rules every format shares: validation, de-duplication, idempotence, all-or-nothing."""

import json
import shutil

import pytest
from django.core.management.base import CommandError
from PIL import Image

from labeling.models import Annotation, Dataset, DatasetItem, ImageAsset
from tests.labeling.formats.factories import (
    import_dataset,
    row_counts,
    stored_files,
    write_image,
    write_text,
    write_truncated_jpeg,
)

pytestmark = pytest.mark.django_db


def make_folders(root, classes=("scratch", "good"), images_per_class=2, seed=0):
    for class_index, class_name in enumerate(classes):
        for number in range(images_per_class):
            write_image(root / class_name / f"{number}.jpg", seed=seed + 10 * class_index + number)
    return root


def test_reimport_changes_nothing(tmp_path, media_root):
    make_folders(tmp_path / "set")
    import_dataset(tmp_path / "set", name="line-1", format="folders")
    counts, files = row_counts(), stored_files(media_root)

    output = import_dataset(tmp_path / "set", name="line-1", format="folders")

    assert row_counts() == counts == {"datasets": 1, "images": 4, "items": 4, "annotations": 4}
    assert stored_files(media_root) == files
    assert "images added: 0" in output and "images already present: 4" in output


def test_same_image_in_two_datasets_is_stored_once(tmp_path, media_root):
    make_folders(tmp_path / "set")

    import_dataset(tmp_path / "set", name="first", format="folders")
    output = import_dataset(tmp_path / "set", name="second", format="folders")

    assert ImageAsset.objects.count() == 4
    assert DatasetItem.objects.count() == 8
    assert len([path for path in stored_files(media_root) if "images" in path.parts]) == 4
    assert "images added: 4 (0 newly stored)" in output
    for asset in ImageAsset.objects.all():
        assert set(asset.dataset_items.values_list("dataset__name", flat=True)) == {"first", "second"}


def test_stored_file_is_the_original_bytes_named_by_hash(tmp_path, media_root):
    source = write_image(tmp_path / "set" / "dent" / "a.jpg", seed=5)

    import_dataset(tmp_path / "set", name="bytes", format="folders")

    asset = ImageAsset.objects.get()
    assert asset.file.name == f"images/{asset.sha256[:2]}/{asset.sha256}.jpg"
    assert (media_root / asset.file.name).read_bytes() == source.read_bytes()
    assert (asset.width, asset.height, asset.format) == (40, 30, "JPEG")


def test_png_bytes_under_jpg_name_are_accepted_and_stored_as_png(tmp_path):
    write_image(tmp_path / "set" / "dent" / "really_png.jpg", image_format="PNG")

    import_dataset(tmp_path / "set", name="png", format="folders")

    asset = ImageAsset.objects.get()
    assert asset.format == "PNG"
    assert asset.file.name.endswith(".png")


def test_undecodable_images_are_named_and_nothing_is_written(tmp_path, media_root):
    root = make_folders(tmp_path / "set")
    write_text(root / "scratch" / "readme.jpg", "not an image at all")
    write_truncated_jpeg(root / "scratch" / "truncated.jpg")
    (root / "scratch" / "empty.png").write_bytes(b"")

    with pytest.raises(CommandError) as raised:
        import_dataset(root, name="broken", format="folders")

    message = str(raised.value)
    assert "3 bad file(s)" in message
    assert "readme.jpg: not an image Pillow can decode" in message
    assert "truncated.jpg: image cannot be decoded" in message
    assert "empty.png: empty file" in message
    assert row_counts() == {"datasets": 0, "images": 0, "items": 0, "annotations": 0}
    assert stored_files(media_root) == []


def test_decompression_bomb_is_a_bad_file(tmp_path, monkeypatch):
    write_image(tmp_path / "set" / "dent" / "huge.png", size=(40, 30), image_format="PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)

    with pytest.raises(CommandError, match="huge.png: image too large"):
        import_dataset(tmp_path / "set", name="bomb", format="folders")


def test_failure_while_writing_rolls_back_rows_and_files(tmp_path, media_root, monkeypatch):
    root = tmp_path / "tiles"
    write_image(root / "MT_Crack" / "Imgs" / "a.jpg", size=(20, 10))
    mask = Image.new("L", (20, 10), 0)
    mask.paste(255, (2, 2, 6, 6))
    mask.save(root / "MT_Crack" / "Imgs" / "a.png")

    def fail(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(Annotation.objects, "bulk_create", fail)

    with pytest.raises(RuntimeError):
        import_dataset(root, name="rollback", format="masks")

    assert row_counts() == {"datasets": 0, "images": 0, "items": 0, "annotations": 0}
    assert stored_files(media_root) == []


def test_reimport_appends_new_classes_after_existing_ones(tmp_path):
    make_folders(tmp_path / "one", classes=("scratch", "crack"))
    import_dataset(tmp_path / "one", name="merge", format="folders")
    make_folders(tmp_path / "two", classes=("bubble", "scratch", "ok"), seed=100)

    output = import_dataset(tmp_path / "two", name="merge", format="folders")

    assert Dataset.objects.get(name="merge").classes == ["crack", "scratch", "bubble"]
    assert "(new: bubble)" in output


def test_duplicate_content_within_one_import_is_kept_once(tmp_path):
    root = make_folders(tmp_path / "set", classes=("scratch",), images_per_class=1)
    shutil.copy(root / "scratch" / "0.jpg", root / "scratch" / "copy.jpg")

    output = import_dataset(root, name="dups", format="folders")

    assert DatasetItem.objects.count() == 1
    assert "scratch/copy.jpg: same image as scratch/0.jpg; skipped" in output


def test_json_summary(tmp_path):
    make_folders(tmp_path / "set")

    summary = json.loads(import_dataset(tmp_path / "set", name="summary", format="folders", as_json=True))

    assert summary["images_added"] == 4
    assert summary["annotations_by_kind"] == {"class": 2, "no_defect": 2}
    assert summary["classes"] == ["scratch"]
    assert summary["bad_files"] == []


def test_unknown_format_missing_path_and_bad_name_are_clear_errors(tmp_path):
    make_folders(tmp_path / "set")

    with pytest.raises(CommandError, match="format"):
        import_dataset(tmp_path / "set", name="x", format="pascal")
    with pytest.raises(CommandError, match="no such file or folder"):
        import_dataset(tmp_path / "missing", name="x", format="folders")
    with pytest.raises(CommandError, match="invalid data set name"):
        import_dataset(tmp_path / "set", name="has spaces", format="folders")
    assert row_counts()["datasets"] == 0
