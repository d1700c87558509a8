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
from scipy import ndimage

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


# --- Fine-defect mode -----------------------------------------------------------------------------

# Sizes are camera pixels in fine mode, so a 960x540 frame shows the same defects as a 1920x1080
# one at a quarter of the cost; the tests that depend on the frame use 1920x1080.
FINE_HALF = {"width": 960, "height": 540, "fine_defects": True}
FULL_HD_PIXELS = 1920 * 1080
SQUARE = np.ones((3, 3), dtype=bool)


def gray(unit) -> np.ndarray:
    return pixels(unit).mean(axis=2)


def width_across(mask: np.ndarray) -> float:
    """Mask area over its extent along its main axis: the width of a thin, nearly straight line."""
    rows, cols = np.nonzero(mask)
    points = np.stack([cols, rows], axis=1).astype(np.float64)
    points -= points.mean(axis=0)
    main_axis = np.linalg.svd(points, full_matrices=False)[2][0]
    along = points @ main_axis
    return mask.sum() / (np.ptp(along) + 1)


def distance_to(mask: np.ndarray) -> np.ndarray:
    """Chessboard distance of every pixel to the nearest pixel of `mask` (0 on it)."""
    return ndimage.distance_transform_cdt(~mask, metric="chessboard")


def contrast_to_ring(unit, mask: np.ndarray) -> float:
    """Mean grey level on `mask` minus the mean on the screen 3-6 px around it (8-bit levels)."""
    x, y, width, height = bounding_box(mask)
    window = (slice(max(y - 8, 0), y + height + 8), slice(max(x - 8, 0), x + width + 8))
    distance = distance_to(mask[window])
    ring = (distance >= 3) & (distance <= 6) & unit.screen_mask[window] & ~unit.mask[window]
    image = gray(unit)[window]
    return float(image[mask[window]].mean() - image[ring].mean())


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return int(cols.min()), int(rows.min()), int(np.ptp(cols)) + 1, int(np.ptp(rows)) + 1


@pytest.fixture(scope="module")
def full_hd_units():
    """Five defective fine-mode units at 1920x1080, with their labels drawn as usual."""
    config = SyntheticConfig(width=1920, height=1080, fine_defects=True, defect_rate=1.0)
    return list(generate_units(5, seed=0, config=config))


def test_fine_scratches_are_faint_hairlines():
    config = SyntheticConfig(**FINE_HALF)

    units = [generate_unit(np.random.default_rng([9, index]), config, label="scratch") for index in range(6)]

    instances = [(unit, instance) for unit in units for instance in unit.instances]
    assert len(instances) >= 8
    assert any(len(unit.instances) > 1 for unit in units)
    for unit, instance in instances:
        assert 1.0 <= width_across(instance.mask) <= 3.1
        assert max(instance.box[2:]) <= 620
        assert 1.5 <= contrast_to_ring(unit, instance.mask) <= 30
    assert min(contrast_to_ring(unit, instance.mask) for unit, instance in instances) < 6


def test_fine_stains_are_small_soft_spots_larger_than_the_dust():
    config = SyntheticConfig(**FINE_HALF)

    units = [generate_unit(np.random.default_rng([9, index]), config, label="stain") for index in range(6)]

    spots = [(unit, instance) for unit in units for instance in unit.instances]
    assert len(spots) >= 6
    for unit, spot in spots:
        assert 8 <= spot.mask.sum() <= np.pi / 4 * 26**2
        assert max(spot.box[2:]) <= 26
        assert 2 <= abs(contrast_to_ring(unit, spot.mask)) <= 45
    speck_labels, speck_count = ndimage.label(np.any([unit.dust_mask for unit in units], axis=0))
    assert speck_count > 0
    assert max(ndimage.sum_labels(speck_labels > 0, speck_labels, range(1, speck_count + 1))) <= 6


def test_fine_cracks_and_dead_pixels_keep_camera_pixel_sizes():
    config = SyntheticConfig(**FINE_HALF)

    dead = generate_unit(np.random.default_rng([9, 0]), config, label="dead_pixels")
    crack = generate_unit(np.random.default_rng([9, 0]), config, label="crack")

    assert all(instance.mask.sum() <= 8 * 5**2 for instance in dead.instances)
    for instance in crack.instances:
        thin = ndimage.binary_erosion(instance.mask, SQUARE, iterations=2)
        assert thin.sum() < 0.1 * instance.mask.sum()  # lines of a few pixels, no thick bands


def test_fine_mode_makes_most_defective_units_small(full_hd_units):
    small = [
        unit
        for unit in full_hd_units
        if all(instance.mask.sum() < 0.0005 * FULL_HD_PIXELS for instance in unit.instances)
    ]

    # 73 % over 300 units (see the module docstring); five units are a rough check.
    assert len(small) >= len(full_hd_units) / 2
    assert {unit.label for unit in full_hd_units} >= {"scratch", "stain"}


def test_fine_masks_lie_on_the_screen_and_dust_never_touches_them(full_hd_units):
    assert any(unit.dust_mask.any() for unit in full_hd_units)
    for unit in full_hd_units:
        assert unit.image.size == (1920, 1080)
        assert unit.defective and unit.instances
        assert not (unit.mask & ~unit.screen_mask).any()
        assert (distance_to(unit.mask)[unit.dust_mask] >= 2).all()


@pytest.mark.parametrize("label", ["scratch", "stain"])
def test_fine_masks_are_exact_against_the_clean_twin(label):
    config = SyntheticConfig(**FINE_HALF)

    unit = generate_unit(np.random.default_rng([0, 1]), config, label=label)
    twin = generate_unit(np.random.default_rng([0, 1]), config, label=NO_DEFECT)

    change = np.abs(pixels(unit) - pixels(twin)).max(axis=2)
    for instance in unit.instances:
        assert (change[instance.mask] > 0).mean() >= 0.98
    distance = distance_to(unit.mask)
    strong = change >= 0.5 * change[unit.mask].mean()
    assert (strong & (distance > 3)).sum() <= 0.01 * strong.sum()
    # Beyond JPEG's 16-px blocks the twin is the same photograph.
    assert not change[distance > 24].any()


def test_fine_mode_is_deterministic_and_the_same_with_workers(tmp_path):
    config = SyntheticConfig(width=320, height=180, fine_defects=True, defect_rate=0.8)

    write_dataset(tmp_path / "first", 4, seed=3, config=config, format="coco")
    write_dataset(tmp_path / "second", 4, seed=3, config=config, format="coco", workers=2)

    assert folder_bytes(tmp_path / "first") == folder_bytes(tmp_path / "second")


def test_fine_mode_changes_the_defects_but_not_the_labels():
    plain = list(generate_units(6, seed=4, config=tiny()))
    fine = list(generate_units(6, seed=4, config=tiny(fine_defects=True)))

    assert [unit.label for unit in plain] == [unit.label for unit in fine]
    assert all(unit.dust_mask is None for unit in plain)
    assert all(a.image.tobytes() != b.image.tobytes() for a, b in zip(plain, fine, strict=True))


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
