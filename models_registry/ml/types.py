"""Value types shared by training, evaluation and serving."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in image pixels."""

    x: float
    y: float
    width: float
    height: float
    label: str

    @property
    def x2(self) -> float:
        return self.x + self.width

    @property
    def y2(self) -> float:
        return self.y + self.height


@dataclass(frozen=True)
class Sample:
    """One labelled image as training sees it.

    `defective` is True/False when known at image level; None when the image has no label at
    all. `classes` are the image-level defect classes. `boxes`, `polygons` (label, points in
    pixels) and `mask_paths` (label, path of a binary PNG, non-zero = defect) are optional.
    """

    key: str
    image_path: str
    defective: bool | None
    classes: tuple[str, ...] = ()
    boxes: tuple[Box, ...] = ()
    polygons: tuple[tuple[str, tuple[tuple[float, float], ...]], ...] = ()
    mask_paths: tuple[tuple[str, str], ...] = ()

    @property
    def has_mask(self) -> bool:
        return bool(self.mask_paths or self.polygons)


@dataclass(frozen=True)
class Region:
    """A highlighted region: what the inspector sees outlined on the image."""

    x: float
    y: float
    width: float
    height: float
    label: str
    score: float
    # Run-length encoded mask inside the box, when the model has one ({"size": [h, w], "counts": [...]}).
    mask_rle: dict | None = None

    def as_dict(self) -> dict:
        data = {
            "x": round(self.x, 1),
            "y": round(self.y, 1),
            "width": round(self.width, 1),
            "height": round(self.height, 1),
            "label": self.label,
            "score": round(self.score, 4),
        }
        if self.mask_rle is not None:
            data["mask_rle"] = self.mask_rle
        return data


@dataclass(frozen=True)
class EmbeddingSummary:
    """What drift monitoring keeps of an image: pooled backbone features and input statistics."""

    vector: tuple[float, ...]
    brightness: float
    contrast: float
    sharpness: float
    color: tuple[float, float, float]


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one image.

    `defect_probability` is calibrated (temperature scaling on validation data);
    `class_scores` maps each defect class to P(defective and that class). `label` is the
    most probable outcome among "no_defect" and the classes, and `confidence` its probability:
    the quantity the risk-controlled thresholds are set on.
    """

    defect_probability: float
    class_scores: dict[str, float]
    regions: tuple[Region, ...]
    label: str
    confidence: float
    anomaly_score: float | None
    embedding: EmbeddingSummary
    model_version: str
    timings_ms: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def verdict(self) -> str:
        return "fail" if self.label != NO_DEFECT else "pass"

    def as_dict(self) -> dict:
        return {
            "defect_probability": round(self.defect_probability, 6),
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "verdict": self.verdict,
            "class_scores": {k: round(v, 6) for k, v in self.class_scores.items()},
            "regions": [r.as_dict() for r in self.regions],
            "anomaly_score": None if self.anomaly_score is None else round(self.anomaly_score, 6),
            "model_version": self.model_version,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }


NO_DEFECT = "no_defect"


def image_statistics(
    gray: np.ndarray, rgb: np.ndarray
) -> tuple[float, float, float, tuple[float, float, float]]:
    """Brightness, contrast, sharpness (variance of a Laplacian) and mean colour, in 0-1 units,
    of an image with values 0-255 (`gray` H x W, `rgb` H x W x 3)."""
    g = np.asarray(gray, np.float32)
    laplacian = g[1:-1, 1:-1] * 4 - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    color = rgb.reshape(-1, 3).mean(axis=0) / 255.0
    return (
        float(g.mean() / 255.0),
        float(g.std() / 255.0),
        float(laplacian.var() / (255.0**2)) if laplacian.size else 0.0,
        (float(color[0]), float(color[1]), float(color[2])),
    )
