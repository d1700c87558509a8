"""The synthetic unit generator and `manage.py generate_synthetic` (no database, tiny images)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from models_registry.ml.synthetic import (
    DEFECT_CLASSES,
    GOOD_FOLDER,
    NO_DEFECT,
    SyntheticConfig,
    coco_rle_to_mask,
    generate_unit,
    generate_units,
    mask_to_coco_rle,
    write_dataset,
)

TINY = {"width": 160, "height": 90}


def tiny(**overrides) -> SyntheticConfig:
    return SyntheticConfig(**{**TINY, **overrides})


def pixels(unit) -> np.ndarray:
    return np.asarray(unit.image, dtype=np.float64)


def laplacian_variance(gray: np.ndarray) -> float:
    laplacian = 4 * gray[1:-1, 1:-1] - gray[:-2, 1:-1] - gray[2:, 1:-1] - gray[1:-1, :-2] - gray[1:-1, 2:]
    return float(laplacian.var())


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# --- Determinism ----------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_datasets(tmp_path):
    config = tiny()

    write_dataset(tmp_path / "first", 6, seed=7, config=config, format="masks")
    write_dataset(tmp_path / "second", 6, seed=7, config=config, format="masks")

    first, second = folder_bytes(tmp_path / "first"), folder_bytes(tmp_path / "second")
    assert len(first) == 12
    assert first == second


def test_different_seed_gives_different_images():
    config = tiny()

    first = [unit.image.tobytes() for unit in generate_units(4, seed=1, config=config)]
    second = [unit.image.tobytes() for unit in generate_units(4, seed=2, config=config)]

    assert all(a != b for a, b in zip(first, second, strict=True))


def test_any_unit_can_be_regenerated_alone():
    config = tiny()

    units = list(generate_units(5, seed=3, config=config))
    alone = generate_unit(np.random.default_rng([3, 4]), config)

    assert alone.image.tobytes() == units[4].image.tobytes()
    assert alone.label == units[4].label


# Digests of units drawn by the generator before the fine-defect mode and the renderer's speed-ups
# (commit c913c58): the default mode must keep drawing exactly these pixels and masks. A new
# numpy or Pillow (its JPEG codec) may change them; check the images by eye before updating.
PINNED_UNITS = [
    ((160, 90, 1.0), 0, "dead_pixels", "3e262d9e33c7b058"),
    ((160, 90, 1.0), 1, "stain", "7c024eaa287c417c"),
    ((160, 90, 1.0), 2, "crack", "7065dc5835003130"),
    ((160, 90, 1.0), 3, "stain", "c5320331d12709db"),
    ((640, 360, 0.5), 0, NO_DEFECT, "d49bf24cb5b3ae6f"),
    ((640, 360, 0.5), 1, "stain", "13bf25cdac0fce4b"),
    ((640, 360, 0.5), 2, "crack", "1c4a6d8cc2ae2d4d"),
    ((1920, 1080, 1.0), 0, "dead_pixels", "f69f9b8001355dd0"),
]


def unit_digest(unit) -> str:
    digest = hashlib.sha256(unit.image.tobytes())
    digest.update(unit.label.encode())
    for instance in unit.instances:
        digest.update(np.packbits(instance.mask).tobytes())
    return digest.hexdigest()[:16]


@pytest.mark.parametrize(("size_and_rate", "index", "label", "expected"), PINNED_UNITS)
def test_default_mode_draws_the_same_units_as_before(size_and_rate, index, label, expected):
    width, height, defect_rate = size_and_rate
    config = SyntheticConfig(width=width, height=height, defect_rate=defect_rate)

    unit = generate_unit(np.random.default_rng([2024, index]), config)

    assert unit.label == label
    assert unit_digest(unit) == expected


# --- Labels and masks -----------------------------------------------------------------------------


@pytest.mark.parametrize("label", DEFECT_CLASSES)
def test_each_class_draws_masks_inside_the_screen(label):
    config = tiny()

    for index in range(3):
        unit = generate_unit(np.random.default_rng([11, index]), config, label=label)

        assert unit.label == label
        assert unit.image.size == (160, 90) and unit.image.mode == "RGB"
        assert 1 <= len(unit.instances) <= 3
        for instance in unit.instances:
            assert instance.label == label
            assert instance.mask.shape == (90, 160) and instance.mask.dtype == bool
            assert instance.mask.any()
            assert not (instance.mask & ~unit.screen_mask).any()
            x, y, width, height = instance.box
            rows, cols = np.nonzero(instance.mask)
            assert (x, y, width, height) == (
                cols.min(),
                rows.min(),
                cols.max() - cols.min() + 1,
                rows.max() - rows.min() + 1,
            )


def test_defect_rate_zero_gives_only_good_units():
    units = list(generate_units(8, seed=5, config=tiny(defect_rate=0.0)))

    assert {unit.label for unit in units} == {NO_DEFECT}
    assert all(unit.instances == () and not unit.mask.any() for unit in units)


def test_defect_rate_one_gives_only_defective_units_and_every_class_appears():
    units = list(generate_units(24, seed=5, config=tiny(defect_rate=1.0)))

    assert all(unit.defective and unit.instances for unit in units)
    assert all({instance.label for instance in unit.instances} == {unit.label} for unit in units)
    assert {unit.label for unit in units} == set(DEFECT_CLASSES)


def test_defect_rate_sets_the_share_of_defective_units():
    units = list(generate_units(40, seed=9, config=tiny(defect_rate=0.25)))

    defective = sum(unit.defective for unit in units)

    assert 3 <= defective <= 18


@pytest.mark.parametrize("new_defect", ["chip", "bubble"])
def test_new_defect_replaces_the_known_classes(new_defect):
    units = list(generate_units(6, seed=2, config=tiny(defect_rate=1.0, new_defect=new_defect)))

    assert {unit.label for unit in units} == {new_defect}
    assert all(
        instance.label == new_defect and instance.mask.any() for unit in units for instance in unit.instances
    )


def test_new_defect_rate_mixes_new_and_known_defects():
    config = tiny(defect_rate=1.0, new_defect="bubble", new_defect_rate=0.5)

    labels = [unit.label for unit in generate_units(16, seed=4, config=config)]

    assert "bubble" in labels
    assert set(labels) - {"bubble"} <= set(DEFECT_CLASSES) and set(labels) - {"bubble"}


# --- Drift knobs ----------------------------------------------------------------------------------


def test_lower_brightness_darkens_the_image():
    normal = [pixels(unit).mean() for unit in generate_units(4, seed=8, config=tiny())]
    dim = [pixels(unit).mean() for unit in generate_units(4, seed=8, config=tiny(brightness=0.6))]

    assert all(d < 0.75 * n for d, n in zip(dim, normal, strict=True))


def test_lower_contrast_narrows_the_spread():
    normal = [pixels(unit).std() for unit in generate_units(4, seed=8, config=tiny())]
    flat = [pixels(unit).std() for unit in generate_units(4, seed=8, config=tiny(contrast=0.5))]

    assert all(f < 0.7 * n for f, n in zip(flat, normal, strict=True))


def test_blur_lowers_the_laplacian_variance():
    sharp = [
        laplacian_variance(pixels(unit).mean(axis=2)) for unit in generate_units(4, seed=8, config=tiny())
    ]
    blurred = [
        laplacian_variance(pixels(unit).mean(axis=2))
        for unit in generate_units(4, seed=8, config=tiny(blur=2.0))
    ]

    assert all(b < 0.8 * s for b, s in zip(blurred, sharp, strict=True))


def test_color_cast_shifts_the_channel_ratios():
    def red_over_blue(config: SyntheticConfig) -> list[float]:
        means = [
            pixels(unit).reshape(-1, 3).mean(axis=0) for unit in generate_units(4, seed=8, config=config)
        ]
        return [red / blue for red, _, blue in means]

    neutral = red_over_blue(tiny())
    warm = red_over_blue(tiny(color_cast=(1.15, 1.0, 0.85)))

    assert all(w > 1.2 * n for w, n in zip(warm, neutral, strict=True))


def test_drift_knobs_leave_labels_and_masks_unchanged():
    plain = list(generate_units(4, seed=6, config=tiny()))
    drifted = list(
        generate_units(4, seed=6, config=tiny(brightness=0.7, blur=1.5, color_cast=(1.1, 1.0, 0.9)))
    )

    assert [unit.label for unit in plain] == [unit.label for unit in drifted]
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(plain, drifted, strict=True))


@pytest.mark.parametrize(
    "overrides",
    [
        {"width": 10},
        {"defect_rate": 1.5},
        {"brightness": 0.0},
        {"blur": -1.0},
        {"color_cast": (1.0, 1.0)},
        {"color_cast": (1.0, -1.0, 1.0)},
        {"new_defect": "dent"},
    ],
)
def test_config_rejects_bad_values(overrides):
    with pytest.raises(ValueError):
        tiny(**overrides)


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


def test_rle_round_trip():
    mask = np.zeros((5, 7), dtype=bool)
    mask[0, 0] = mask[1:4, 2:5] = mask[4, 6] = True

    rle = mask_to_coco_rle(mask)

    assert rle["size"] == [5, 7]
    assert rle["counts"][0] == 0  # starts with a (here empty) run of zeros
    assert np.array_equal(coco_rle_to_mask(rle), mask)


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
