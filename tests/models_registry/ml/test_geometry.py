"""Geometries: content sizes, views, stitching, and regions in original pixels at every frame size.

`BrightBoxPredictor` stands in for the network with exact arithmetic: each view's one detection
is the bounding box of its bright pixels, its mask those pixels. Everything else is the real
serving path (decode with its reduced JPEG scale, EXIF orientation, the geometry's content and
views, the merge across tiles, the mapping back). So a white rectangle drawn at a known place in
a frame must come back as a region at that place, in the frame's own pixels, whatever the
frame's size, format and orientation: the bug that put regions at a half or a quarter of their
position on 1280x720 and 1920x1080 frames cannot come back unseen.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models_registry.ml.calibration import Calibration
from models_registry.ml.frames import ORIENTATION_TAG
from models_registry.ml.geometry import ASPECT, SQUASH, TILES, Geometry, GeometryRequest, choose_geometry
from models_registry.ml.layout import DETECTION_STRIDE, MASK_STRIDE, NetworkConfig
from models_registry.ml.preprocessing import PreprocessConfig
from models_registry.ml.serving.bundle import BundleConfig, write_config
from models_registry.ml.serving.postprocessing import Detection, merge_across_views
from models_registry.ml.serving.predictor import Predictor

GEOMETRIES = {
    "squash": Geometry.square(256),
    "aspect": Geometry(ASPECT, 256, 160),
    "tiles at half scale": Geometry(TILES, 256, 256, scale=0.5, overlap=32),
    "tiles at native scale": Geometry(TILES, 256, 256, scale=1.0, overlap=32),
}


class BrightBoxPredictor(Predictor):
    """Each view's bright pixels (> 160 grey) as one box of class 0 and as its mask."""

    def forward(self, batch: np.ndarray, *, spread: bool = True) -> dict[str, np.ndarray]:
        count, height, width, _ = batch.shape
        rows, columns = height // DETECTION_STRIDE, width // DETECTION_STRIDE
        peaks = np.zeros((count, 1, rows, columns), np.float32)
        size = np.zeros((count, 2, rows, columns), np.float32)
        offset = np.zeros((count, 2, rows, columns), np.float32)
        mask = np.zeros((count, 1, height // MASK_STRIDE, width // MASK_STRIDE), np.float32)
        logits = np.full(count, -5.0, np.float32)
        for k, view in enumerate(batch):
            bright = view.mean(axis=2) > 160
            mask[k, 0] = bright.reshape(height // 4, 4, width // 4, 4).max(axis=(1, 3))
            if not bright.any():
                continue
            ys, xs = np.nonzero(bright)
            x1, x2, y1, y2 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
            centre_x, centre_y = (x1 + x2) / 2 / DETECTION_STRIDE, (y1 + y2) / 2 / DETECTION_STRIDE
            column, row = min(int(centre_x), columns - 1), min(int(centre_y), rows - 1)
            peaks[k, 0, row, column] = 0.9
            size[k, :, row, column] = (math.log((x2 - x1) / 8), math.log((y2 - y1) / 8))
            offset[k, :, row, column] = (centre_x - column, centre_y - row)
            logits[k] = 5.0
        return {
            "defect_logit": logits,
            "class_logits": np.zeros((count, 1), np.float32),
            "peaks": peaks,
            "box_size": size,
            "box_offset": offset,
            "mask": mask,
            "embedding": np.zeros((count, 32), np.float32),
        }


def bundle(folder: Path, geometry: Geometry) -> Path:
    write_config(
        folder,
        BundleConfig(
            classes=("scratch",),
            network=NetworkConfig(),
            geometry=geometry,
            preprocess=PreprocessConfig(),
            calibration=Calibration(),
            region_threshold=0.3,
        ),
    )
    return folder


def frame_with_box(width: int, height: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """A dark, textured frame (as a phone screen on a belt) with one white rectangle (x, y, w, h)."""
    rng = np.random.default_rng(width * 7 + height)
    pixels = (40 + rng.normal(0, 6, (height, width, 1))).clip(0, 255).repeat(3, axis=2).astype(np.uint8)
    x, y, w, h = box
    pixels[y : y + h, x : x + w] = 250
    return pixels


def encoded(pixels: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


def iou(region, box: tuple[int, int, int, int]) -> float:
    x, y, w, h = box
    ix = max(0.0, min(region.x + region.width, x + w) - max(region.x, x))
    iy = max(0.0, min(region.y + region.height, y + h) - max(region.y, y))
    inter = ix * iy
    return inter / (region.width * region.height + w * h - inter)


SIZES = {"640x360": (640, 360), "1280x720": (1280, 720), "1920x1080": (1920, 1080), "12 MP": (4608, 2592)}


@pytest.mark.parametrize("geometry_name", GEOMETRIES)
@pytest.mark.parametrize("size_name", SIZES)
def test_regions_come_back_in_original_pixels_at_every_frame_size(tmp_path, geometry_name, size_name):
    # given a frame of a line camera's size with a defect-like box at a known place (right and low,
    # where a region scaled by a half or a quarter cannot land)
    width, height = SIZES[size_name]
    box = (int(width * 0.62), int(height * 0.55), int(width * 0.12), int(height * 0.08))
    data = encoded(frame_with_box(width, height, box), "JPEG", quality=92)
    predictor = BrightBoxPredictor(bundle(tmp_path, GEOMETRIES[geometry_name]))
    # when the predictor decodes it (a reduced JPEG decode where the geometry allows) and predicts
    frame = predictor.decode(data)
    prediction = predictor.predict(frame)
    # then one region covers the box, in the frame's own pixels
    assert (frame.width, frame.height) == (width, height)
    assert len(prediction.regions) == 1, prediction.regions
    assert iou(prediction.regions[0], box) >= 0.8, (prediction.regions[0], box, frame.reduction)


@pytest.mark.parametrize(
    "fmt, options", [("PNG", {}), ("TIFF", {"compression": "tiff_lzw"}), ("WEBP", {"lossless": True})]
)
def test_regions_are_right_in_every_format(tmp_path, fmt, options):
    box = (1190, 600, 230, 90)
    data = encoded(frame_with_box(1920, 1080, box), fmt, **options)
    predictor = BrightBoxPredictor(bundle(tmp_path, GEOMETRIES["aspect"]))
    assert iou(predictor.predict(data).regions[0], box) >= 0.8


def test_regions_of_an_exif_rotated_frame_are_where_a_person_sees_them(tmp_path):
    # given the picture a person sees (1920x1080), stored turned a quarter with EXIF orientation 6
    box = (1190, 600, 230, 90)
    seen = frame_with_box(1920, 1080, box)
    stored = Image.fromarray(seen).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=92, exif=exif)
    predictor = BrightBoxPredictor(bundle(tmp_path, GEOMETRIES["tiles at half scale"]))
    # then the region is in the oriented frame's pixels
    frame = predictor.decode(buffer.getvalue())
    assert (frame.width, frame.height) == (1920, 1080)
    assert iou(predictor.predict(frame).regions[0], box) >= 0.8


def test_a_defect_across_tile_seams_is_one_region_with_its_mask(tmp_path):
    # given a long diagonal scratch crossing several tiles of a 1920x1080 frame at native scale
    pixels = frame_with_box(1920, 1080, (0, 0, 0, 0))
    for step in range(0, 700):
        x, y = 300 + step, 200 + step // 2
        pixels[y : y + 3, x : x + 3] = 250
    predictor = BrightBoxPredictor(bundle(tmp_path, GEOMETRIES["tiles at native scale"]))
    prediction = predictor.predict(encoded(pixels, "PNG"))
    # then it is one region, its box the scratch's, its mask on the scratch's line
    assert len(prediction.regions) == 1
    region = prediction.regions[0]
    assert iou(region, (300, 200, 702, 353)) >= 0.9
    rle = region.mask_rle
    rows, columns = rle["size"]
    values = np.repeat(np.arange(len(rle["counts"])) % 2, rle["counts"]).reshape(rows, columns)
    assert 0.002 < values.mean() < 0.2  # a thin line in its box, not the box filled
    assert values[0, :3].any() and values[-1, -3:].any()  # from corner to corner


def test_tile_views_cover_the_frame_with_the_overlap_and_stitch_on_cells():
    geometry = Geometry(TILES, 320, 320, scale=0.5, overlap=32)
    assert geometry.content_size(1920, 1080) == (960, 540)
    offsets = geometry.view_offsets(960, 540)
    xs, ys = sorted({x for x, _ in offsets}), sorted({y for _, y in offsets})
    assert xs[0] == 0 and xs[-1] + 320 >= 960 and ys[0] == 0 and ys[-1] + 320 >= 540
    assert all(x % MASK_STRIDE == 0 and y % MASK_STRIDE == 0 for x, y in offsets)
    assert all(b - a <= 320 - 32 + MASK_STRIDE for a, b in zip(xs, xs[1:], strict=False))
    assert geometry.views_per_frame(1920, 1080) == len(xs) * len(ys) == 8


def test_aspect_keeps_the_shape_and_letterboxes_the_rest():
    geometry = Geometry(ASPECT, 512, 288)
    assert geometry.content_size(1920, 1080) == (512, 288)
    assert geometry.content_size(4000, 3000) == (384, 288)  # 4:3 in a 16:9 rectangle
    assert geometry.view_offsets(384, 288) == [(-64, 0)]
    assert Geometry.square(256).content_size(1920, 1080) == (256, 256)


def test_merge_joins_touching_pieces_from_different_tiles_only():
    piece_left = Detection(0, 0.8, 100, 100, 260, 180)  # reaches into the shared strip
    piece_right = Detection(0, 0.7, 240, 150, 400, 230)
    faint = Detection(0, 0.05, 250, 100, 300, 300)  # a guess: must not stretch the region
    other_class = Detection(1, 0.9, 240, 150, 400, 230)
    merged = merge_across_views([[piece_left], [piece_right, faint, other_class]])
    boxes = sorted((d.class_index, d.x1, d.y1, d.x2, d.y2) for d in merged)
    assert (0, 100, 100, 400, 230) in boxes
    assert (1, 240, 150, 400, 230) in boxes
    same_tile = merge_across_views([[piece_left, piece_right]])
    assert len(same_tile) == 2  # pieces in one tile are two defects (NMS keeps both: little overlap)


def test_old_bundles_read_as_a_square_squash(tmp_path):
    config = bundle(tmp_path, Geometry.square(64))
    data = json.loads((config / "loupe-model.json").read_text())
    data["format_version"] = 2
    del data["geometry"]
    data["preprocess"]["input_size"] = 192
    (config / "loupe-model.json").write_text(json.dumps(data))
    assert BrightBoxPredictor(config).geometry == Geometry(SQUASH, 192, 192)


def test_the_default_geometry_follows_the_data():
    hairlines = [(0.0003, 2.0)] * 9
    chosen = choose_geometry([(1920, 1080)] * 10, hairlines)
    assert chosen.geometry.kind == TILES and chosen.geometry.scale == 0.5
    assert "too fine" in chosen.reason
    chosen = choose_geometry([(1920, 1080)] * 10, [(0.0003, 1.0)] * 9)
    assert chosen.geometry.kind == TILES and chosen.geometry.scale == 1.0
    stains = [(0.01, 25.0)] * 9
    assert choose_geometry([(1920, 1080)] * 10, stains).geometry == Geometry(ASPECT, 512, 288)
    assert choose_geometry([(200, 200)] * 10, stains).geometry == Geometry(ASPECT, 192, 192)
    assert choose_geometry([(640, 360)] * 10, stains).geometry == Geometry(ASPECT, 256, 160)
    # fine defects on a small frame: the whole frame, at the scale that keeps them a pixel thick
    assert choose_geometry([(640, 360)] * 10, [(0.0001, 2.0)] * 9).geometry == Geometry(ASPECT, 320, 192)
    asked = GeometryRequest(kind=TILES, input_size=384).resolve([(1920, 1080)] * 3, stains)
    assert asked.geometry == Geometry(TILES, 384, 384, scale=0.5, overlap=32)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"kind": "tiles", "width": 320, "height": 256}, "square"),
        ({"kind": "aspect", "width": 300, "height": 256}, "multiple of 32"),
        ({"kind": "tiles", "width": 320, "height": 320, "overlap": 200}, "overlap"),
        ({"kind": "round", "width": 320, "height": 320}, "unknown geometry"),
    ],
)
def test_a_bad_geometry_is_refused_naming_the_problem(values, message):
    with pytest.raises(ValueError, match=message):
        Geometry(**values)
