"""`write_dataset` and `manage.py generate_synthetic` (no database, tiny images)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from models_registry.ml.coco import coco_rle_to_mask
from models_registry.ml.synthetic.config import DEFECT_CLASSES, SyntheticConfig
from models_registry.ml.synthetic.scene import generate_units
from models_registry.ml.synthetic.writing import GOOD_FOLDER, write_dataset
from models_registry.ml.types import NO_DEFECT
from tests.models_registry.ml.synthetic.helpers import folder_bytes, tiny


def test_same_seed_gives_byte_identical_datasets(tmp_path):
    config = tiny()

    write_dataset(tmp_path / "first", 6, seed=7, config=config, format="masks")
    write_dataset(tmp_path / "second", 6, seed=7, config=config, format="masks")

    first, second = folder_bytes(tmp_path / "first"), folder_bytes(tmp_path / "second")
    assert len(first) == 12
    assert first == second


def test_fine_mode_is_deterministic_and_the_same_with_workers(tmp_path):
    config = SyntheticConfig(width=320, height=180, fine_defects=True, defect_rate=0.8)

    write_dataset(tmp_path / "first", 4, seed=3, config=config, format="coco")
    write_dataset(tmp_path / "second", 4, seed=3, config=config, format="coco", workers=2)

    assert folder_bytes(tmp_path / "first") == folder_bytes(tmp_path / "second")


# --- Output formats -------------------------------------------------------------------------------


def test_masks_format_writes_the_mask_folder_layout(tmp_path):
    out = tmp_path / "set"

    summary = write_dataset(out, 8, seed=1, config=tiny(), format="masks")

    folders = {path.name for path in out.iterdir()}
    assert folders <= {GOOD_FOLDER, *DEFECT_CLASSES}
    assert sum(summary["units"].values()) == 8
    images = sorted(out.glob("*/Imgs/unit_*.jpg"))
    assert len(images) == 8
    for image_path in images:
        mask_path = image_path.with_suffix(".png")
        assert mask_path.is_file()
        with Image.open(image_path) as image, Image.open(mask_path) as mask_image:
            assert image.size == (160, 90) and image.format == "JPEG"
            mask = np.asarray(mask_image)
        assert mask.shape == (90, 160)
        assert set(np.unique(mask)) <= {0, 255}
        is_good = image_path.parent.parent.name == GOOD_FOLDER
        assert mask.any() != is_good
    assert summary["units"].get(NO_DEFECT, 0) == len(list(out.glob(f"{GOOD_FOLDER}/Imgs/*.jpg")))


def test_coco_format_writes_images_and_valid_annotations(tmp_path):
    out = tmp_path / "set"

    summary = write_dataset(
        out, 8, seed=1, config=tiny(new_defect="chip", new_defect_rate=0.5), format="coco"
    )

    document = json.loads((out / "annotations.json").read_text())
    assert [category["name"] for category in document["categories"]] == [*DEFECT_CLASSES, "chip"]
    assert len(document["images"]) == 8
    for image in document["images"]:
        assert (image["width"], image["height"]) == (160, 90)
        assert (out / "images" / image["file_name"]).is_file()
    assert len(document["annotations"]) == sum(summary["instances"].values())
    image_ids = {image["id"] for image in document["images"]}
    for annotation in document["annotations"]:
        assert annotation["image_id"] in image_ids
        assert annotation["iscrowd"] == 0
        mask = coco_rle_to_mask(annotation["segmentation"])
        assert mask.shape == (90, 160)
        assert mask.sum() == annotation["area"] > 0
        x, y, width, height = annotation["bbox"]
        assert 0 <= x and 0 <= y and x + width <= 160 and y + height <= 90
        assert mask[y : y + height, x : x + width].sum() == annotation["area"]
    annotated = {annotation["image_id"] for annotation in document["annotations"]}
    assert len(image_ids - annotated) == summary["units"].get(NO_DEFECT, 0)


def test_coco_info_records_the_default_mode(tmp_path):
    write_dataset(tmp_path, 1, seed=0, config=tiny(), format="coco")

    info = json.loads((tmp_path / "annotations.json").read_text())["info"]
    assert info["fine_defects"] is False and info["config"]["fine_defects"] is False


def test_write_dataset_rejects_fewer_than_one_worker(tmp_path):
    with pytest.raises(ValueError, match="workers"):
        write_dataset(tmp_path / "set", 2, seed=0, config=tiny(), workers=0)

    assert not (tmp_path / "set").exists()


def test_write_dataset_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")

    with pytest.raises(FileExistsError):
        write_dataset(tmp_path, 1, seed=0, config=tiny(), format="masks")


# --- The management command -----------------------------------------------------------------------


def test_command_writes_a_dataset_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "set"

    call_command("generate_synthetic", str(out), "--count", "4", "--size", "160x90", "--format", "coco")

    assert len(list((out / "images").glob("*.jpg"))) == 4
    assert "Wrote 4 units" in capsys.readouterr().out


def test_command_fine_defects_flag_draws_fine_defects_and_records_it(tmp_path, capsys):
    out = tmp_path / "set"

    call_command(
        "generate_synthetic",
        str(out),
        *("--count", "3", "--size", "320x180", "--format", "coco", "--defect-rate", "1"),
        *("--fine-defects", "--workers", "2"),
    )

    document = json.loads((out / "annotations.json").read_text())
    assert document["info"]["fine_defects"] is True
    assert document["info"]["config"]["fine_defects"] is True
    assert [category["name"] for category in document["categories"]] == list(DEFECT_CLASSES)
    config = SyntheticConfig(width=320, height=180, defect_rate=1.0, fine_defects=True)
    expected = [
        instance.mask for unit in generate_units(3, seed=0, config=config) for instance in unit.instances
    ]
    masks = [coco_rle_to_mask(annotation["segmentation"]) for annotation in document["annotations"]]
    assert len(masks) == len(expected) and all(
        np.array_equal(a, b) for a, b in zip(masks, expected, strict=True)
    )
    assert "fine defects" in capsys.readouterr().out


def test_command_overwrite_replaces_an_earlier_run(tmp_path):
    out = tmp_path / "set"
    call_command("generate_synthetic", str(out), "--count", "4", "--size", "160x90")
    (out / "README.txt").write_text("mine")

    call_command("generate_synthetic", str(out), "--count", "2", "--size", "160x90", "--overwrite")

    assert len(list(out.glob("*/Imgs/*.jpg"))) == 2
    assert (out / "README.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--count", "-1"], "--count"),
        (["--count", "many"], "--count"),
        (["--count", "2", "--size", "640by360"], "--size"),
        (["--count", "2", "--size", "8x8"], "--size"),
        (["--count", "2", "--new-defect", "dent"], "--new-defect"),
        (["--count", "2", "--color-cast", "1.1,0.9"], "--color-cast"),
        (["--count", "2", "--color-cast", "1,0,1"], "--color-cast"),
        (["--count", "2", "--color-cast", "red,green,blue"], "--color-cast"),
        (["--count", "2", "--brightness", "-0.5"], "--brightness"),
        (["--count", "2", "--defect-rate", "2"], "--defect-rate"),
        (["--count", "2", "--blur", "-1"], "--blur"),
        (["--count", "2", "--format", "voc"], "--format"),
        (["--count", "2", "--workers", "0"], "--workers"),
        (["--count", "2", "--workers", "two"], "--workers"),
    ],
)
def test_command_rejects_bad_arguments(tmp_path, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("generate_synthetic", str(tmp_path / "set"), *arguments)

    assert not (tmp_path / "set").exists()


def test_command_refuses_a_non_empty_out_without_overwrite(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")

    with pytest.raises(CommandError, match="not empty"):
        call_command("generate_synthetic", str(tmp_path), "--count", "1", "--size", "160x90")

    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]
