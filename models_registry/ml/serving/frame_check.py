"""The frame check: is this a picture the model can judge at all (too small, uniform, exposed far
outside the reference)? Such a frame goes to a person (docs/model.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from models_registry.ml.geometry import Geometry

# Without a reference (bundles made before the check): limits no real camera frame crosses.
UNIFORM_CONTRAST = 0.01  # a standard deviation of 2.5 grey levels over the whole frame
DARKEST, BRIGHTEST = 0.02, 0.98
# With a reference: how far outside what the model's camera gave counts as a fault.
# (Moderate changes of lighting are the drift checks' to see; these are for frames past judging.)
CONTRAST_FRACTION = 0.1  # of the least contrast seen on validation units
EXPOSURE_MARGIN = 0.25  # of the distance between the reference's extreme and black (or white)
SIZE_FRACTION = 0.5  # of the smallest validation frame, a side


@dataclass(frozen=True)
class FrameProblem:
    code: str  # too_small | uniform | underexposed | overexposed
    message: str  # "frame check: uniform frame (...)", for the person and the audit trail


@dataclass(frozen=True)
class FrameLimits:
    """What a frame must meet before the model may judge it."""

    min_width: int
    min_height: int
    min_contrast: float
    min_brightness: float
    max_brightness: float

    @classmethod
    def for_model(cls, geometry: Geometry, reference: Mapping[str, np.ndarray] | None) -> FrameLimits:
        """Limits from the geometry and, when the bundle has one, the drift reference (the
        validation units' input statistics and sizes)."""
        min_width, min_height = geometry.minimum_frame()
        min_contrast, min_brightness, max_brightness = UNIFORM_CONTRAST, DARKEST, BRIGHTEST
        if reference is not None and len(reference.get("contrast", ())):
            min_contrast = max(UNIFORM_CONTRAST, CONTRAST_FRACTION * float(np.min(reference["contrast"])))
            darkest = float(np.min(reference["brightness"]))
            brightest = float(np.max(reference["brightness"]))
            min_brightness = max(DARKEST, darkest * EXPOSURE_MARGIN)
            max_brightness = min(BRIGHTEST, 1 - (1 - brightest) * EXPOSURE_MARGIN)
        if reference is not None and len(reference.get("width", ())):
            min_width = max(min_width, int(SIZE_FRACTION * float(np.min(reference["width"]))))
            min_height = max(min_height, int(SIZE_FRACTION * float(np.min(reference["height"]))))
        return cls(min_width, min_height, min_contrast, min_brightness, max_brightness)

    def as_dict(self) -> dict:
        return {
            "min_width": self.min_width,
            "min_height": self.min_height,
            "min_contrast": round(self.min_contrast, 4),
            "min_brightness": round(self.min_brightness, 4),
            "max_brightness": round(self.max_brightness, 4),
        }


def frame_check(
    *, width: int, height: int, brightness: float, contrast: float, limits: FrameLimits
) -> FrameProblem | None:
    """The first problem the frame has, or None. `brightness` and `contrast` are the frame's mean
    and standard deviation in 0-1 units (`types.image_statistics` of the model's input)."""
    if width < limits.min_width or height < limits.min_height:
        return FrameProblem(
            "too_small",
            f"frame check: frame too small ({width}x{height}; this model needs at least "
            f"{limits.min_width}x{limits.min_height})",
        )
    if contrast < limits.min_contrast:
        return FrameProblem(
            "uniform",
            f"frame check: uniform frame (contrast {contrast:.4f}; the model's camera gives at "
            f"least {limits.min_contrast:.4f}): a dead camera, a covered lens or no lighting?",
        )
    if brightness < limits.min_brightness:
        return FrameProblem(
            "underexposed",
            f"frame check: underexposed frame (brightness {brightness:.3f}, below "
            f"{limits.min_brightness:.3f})",
        )
    if brightness > limits.max_brightness:
        return FrameProblem(
            "overexposed",
            f"frame check: overexposed frame (brightness {brightness:.3f}, above "
            f"{limits.max_brightness:.3f})",
        )
    return None
