"""The network's input normalisation, identical in training and serving.

Decoding lives in `frames` and how a frame becomes network inputs in `geometry`; this is the
per-channel arithmetic the backbone's weights expect, applied inside the serving graph too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class PreprocessConfig:
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessConfig:
        return cls(mean=tuple(data["mean"]), std=tuple(data["std"]))


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
