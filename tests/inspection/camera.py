"""Camera frames for tests: a unit with a known defect mask, at the sizes and in the formats a line
camera sends, and the session's model that finds that defect.

The unit is drawn small (a dark textured screen with one oil stain, its exact mask) and enlarged
to the frame size under test, so every size shows the same defect at the same place in original
pixels. The model is a real DefectNet trained for a few seconds on such units (aspect geometry):
enough to localise the stain (IoU about 0.7), which is what the region tests check.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from models_registry.ml.frames import ORIENTATION_TAG
from models_registry.ml.geometry import ASPECT, Geometry

STAIN_GEOMETRY = Geometry(ASPECT, 128, 96)


@dataclass(frozen=True)
class CameraUnit:
    image: Image.Image  # RGB, 320 x 180 (or the size asked for)
    mask: np.ndarray  # bool, the stain's pixels

    def box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """The stain's box (x, y, w, h) in the pixels of the unit enlarged to `width` x `height`."""
        ys, xs = np.nonzero(self.mask)
        fx, fy = width / self.mask.shape[1], height / self.mask.shape[0]
        return xs.min() * fx, ys.min() * fy, (xs.max() + 1 - xs.min()) * fx, (ys.max() + 1 - ys.min()) * fy

    def frame(self, width: int, height: int) -> Image.Image:
        return self.image.resize((width, height), Image.Resampling.BICUBIC)


def stain_unit(seed: int, *, defective: bool = True, size: tuple[int, int] = (320, 180)) -> CameraUnit:
    rng = np.random.default_rng([5, seed])
    width, height = size
    screen = rng.normal(45, 8, (height, width)).clip(0, 255)
    pixels = np.stack([screen] * 3, axis=2)
    mask = Image.new("L", size, 0)
    if defective:
        radius_x, radius_y = rng.uniform(0.06, 0.14) * width, rng.uniform(0.08, 0.2) * height
        centre_x, centre_y = rng.uniform(0.15, 0.85) * width, rng.uniform(0.2, 0.8) * height
        ImageDraw.Draw(mask).ellipse(
            [centre_x - radius_x, centre_y - radius_y, centre_x + radius_x, centre_y + radius_y], fill=255
        )
        inside = np.asarray(mask, np.float64)[..., None] / 255
        pixels = pixels * (1 - inside) + inside * np.array([220.0, 200.0, 150.0])
    return CameraUnit(Image.fromarray(pixels.clip(0, 255).astype(np.uint8)), np.asarray(mask) > 127)


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def exif_rotated_jpeg(image: Image.Image) -> bytes:
    """`image` stored turned a quarter, with EXIF orientation 6 saying how to show it upright."""
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    return encoded(image.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=92, exif=exif)


def train_stain_model(folder: Path) -> Path:
    from models_registry.ml.models.defectnet.training import TrainConfig
    from models_registry.ml.pipeline import train_bundle
    from models_registry.ml.types import Sample

    samples = []
    for index in range(48):
        unit = stain_unit(index, defective=index % 2 == 1)
        image_path = folder / f"stain-{index}.png"
        unit.image.save(image_path)
        masks: tuple = ()
        if unit.mask.any():
            mask_path = folder / f"stain-{index}-mask.png"
            Image.fromarray(unit.mask.astype(np.uint8) * 255).save(mask_path)
            masks = (("stain", str(mask_path)),)
        samples.append(
            Sample(
                key=f"stain-{index}",
                image_path=str(image_path),
                defective=unit.mask.any(),
                classes=("stain",) if unit.mask.any() else (),
                mask_paths=masks,
            )
        )
    outcome = train_bundle(
        out_dir=folder / "bundle",
        classes=("stain",),
        train=samples[:36],
        validation=samples[36:],
        geometry=STAIN_GEOMETRY,
        config=TrainConfig(epochs=8, batch_size=8, warmup_steps=5),
        threads=2,
    )
    return outcome.bundle_dir
