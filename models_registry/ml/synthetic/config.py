"""What the synthetic generator draws (`SyntheticConfig`: size, drift knobs, fine-defect mode) and
what it gives back (`SyntheticUnit`, `SyntheticInstance`); the generator is described in
docs/synthetic.md."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from models_registry.ml.types import NO_DEFECT

DEFECT_CLASSES = ("crack", "dead_pixels", "scratch", "stain")
NEW_DEFECT_CLASSES = ("bubble", "chip")
MIN_SIZE = 32
MAX_SIZE = 8192


@dataclass(frozen=True)
class SyntheticConfig:
    """What to draw. Every drift knob defaults to neutral (no drift).

    `defect_rate` is the share of defective units. `brightness` multiplies the lighting,
    `contrast` scales deviations from the image mean, `blur` is the sigma in pixels of an extra
    gaussian blur (focus drift), `color_cast` multiplies the R, G, B channels of the lighting.
    `new_defect` (one of NEW_DEFECT_CLASSES) replaces the usual defect classes on a
    `new_defect_rate` share of the defective units. `fine_defects` draws defects in absolute camera
    pixels, as a 1920x1080 line camera sees them (see docs/synthetic.md).
    """

    width: int = 640
    height: int = 360
    defect_rate: float = 0.5
    brightness: float = 1.0
    contrast: float = 1.0
    blur: float = 0.0
    color_cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    new_defect: str | None = None
    new_defect_rate: float = 1.0
    fine_defects: bool = False

    def __post_init__(self) -> None:
        if not (MIN_SIZE <= self.width <= MAX_SIZE and MIN_SIZE <= self.height <= MAX_SIZE):
            raise ValueError(
                f"image size must be between {MIN_SIZE} and {MAX_SIZE} pixels a side, "
                f"got {self.width}x{self.height}"
            )
        for name in ("defect_rate", "new_defect_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        for name in ("brightness", "contrast"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.blur >= 0:
            raise ValueError(f"blur must be zero or positive, got {self.blur}")
        if len(self.color_cast) != 3 or not all(channel > 0 for channel in self.color_cast):
            raise ValueError(f"color_cast must be three positive numbers, got {self.color_cast}")
        if self.new_defect is not None and self.new_defect not in NEW_DEFECT_CLASSES:
            raise ValueError(
                f"new_defect must be one of {', '.join(NEW_DEFECT_CLASSES)}, got {self.new_defect!r}"
            )

    @property
    def classes(self) -> tuple[str, ...]:
        """The defect classes this configuration can produce (the dataset's categories)."""
        return DEFECT_CLASSES + ((self.new_defect,) if self.new_defect else ())


@dataclass(frozen=True, eq=False)
class SyntheticInstance:
    """One defect: its class, its pixel mask (bool, image-sized) and its box (x, y, w, h) in pixels."""

    label: str
    mask: np.ndarray
    box: tuple[int, int, int, int]


@dataclass(frozen=True, eq=False)
class SyntheticUnit:
    """A photographed unit. `label` is "no_defect" or the class of all its `instances`.

    `screen_mask` (bool, image-sized) is where the display is: the usual defects lie inside it
    (a `chip` may reach into the bezel). `dust_mask` (fine-defect mode only, else None) is where
    nuisance dust lies; it never touches an instance mask.
    """

    image: Image.Image
    label: str
    instances: tuple[SyntheticInstance, ...]
    screen_mask: np.ndarray | None = None
    dust_mask: np.ndarray | None = None

    @property
    def defective(self) -> bool:
        return self.label != NO_DEFECT

    @property
    def mask(self) -> np.ndarray:
        """Union of the instance masks (all False for a good unit)."""
        union = np.zeros((self.image.height, self.image.width), dtype=bool)
        for instance in self.instances:
            union |= instance.mask
        return union


def config_as_dict(config: SyntheticConfig) -> dict:
    """The generator's settings as plain JSON values (size, drift knobs, fine-defect mode)."""
    return {
        "width": config.width,
        "height": config.height,
        "defect_rate": config.defect_rate,
        "brightness": config.brightness,
        "contrast": config.contrast,
        "blur": config.blur,
        "color_cast": list(config.color_cast),
        "new_defect": config.new_defect,
        "new_defect_rate": config.new_defect_rate,
        "fine_defects": config.fine_defects,
    }
