"""Image decoding and preprocessing, identical in training and serving.

Decoding a 1280x720 JPEG to feed a 256 px network is most of the pipeline's cost, so JPEGs are
decoded at a reduced DCT scale (`Image.draft`) no smaller than the input size, then resized.
Training uses the same function, so the model sees exactly what serving will give it.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ImageSource = str | Path | bytes | Image.Image


@dataclass(frozen=True)
class PreprocessConfig:
    input_size: int = 256
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessConfig:
        return cls(input_size=int(data["input_size"]), mean=tuple(data["mean"]), std=tuple(data["std"]))


@dataclass(frozen=True)
class LoadedImage:
    pixels: np.ndarray  # uint8, input_size x input_size x 3
    original_width: int
    original_height: int


def open_image(source: ImageSource) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, bytes):
        return Image.open(io.BytesIO(source))
    return Image.open(source)


def load_image(source: ImageSource, input_size: int) -> LoadedImage:
    """Decode and resize to a square `input_size` RGB image (aspect ratio is not kept)."""
    image = open_image(source)
    width, height = image.size
    if image.format == "JPEG":
        image.draft("RGB", (input_size, input_size))
    if image.mode != "RGB":
        image = image.convert("RGB")
    if image.size != (input_size, input_size):
        image = image.resize((input_size, input_size), Image.Resampling.BILINEAR)
    return LoadedImage(np.asarray(image, dtype=np.uint8), width, height)


def load_mask(path: str | Path, input_size: int) -> np.ndarray:
    """A binary mask (non-zero = defect) resized to the network's input, as float32 0/1."""
    with Image.open(path) as mask:
        mask = mask.convert("L").resize((input_size, input_size), Image.Resampling.BILINEAR)
        return (np.asarray(mask, dtype=np.float32) >= 64).astype(np.float32)


def scale_and_shift(config: PreprocessConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel `scale`, `shift` with normalised = pixel * scale - shift (pixel in 0-255)."""
    mean = np.asarray(config.mean, dtype=np.float32)
    std = np.asarray(config.std, dtype=np.float32)
    return 1.0 / (255.0 * std), mean / std


def normalise(pixels: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """uint8 NHWC or HWC -> float32 NCHW normalised as the backbone's weights expect."""
    batch = pixels[None] if pixels.ndim == 3 else pixels
    scale, shift = scale_and_shift(config)
    data = batch.astype(np.float32) * scale - shift
    return np.ascontiguousarray(data.transpose(0, 3, 1, 2))
