"""A synthetic unit's photograph: the phone placed on the belt, its body, screen, shadow and glare,
the camera; `generate_unit` / `generate_units` draw units (docs/synthetic.md)."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator

import numpy as np
from PIL import Image
from scipy import ndimage

from models_registry.ml.synthetic.config import (
    DEFECT_CLASSES,
    NEW_DEFECT_CLASSES,
    SyntheticConfig,
    SyntheticInstance,
    SyntheticUnit,
)
from models_registry.ml.synthetic.defects import DefectPainter
from models_registry.ml.synthetic.drawing import bilinear, coverage, rounded_rect_sdf, smooth_noise, span
from models_registry.ml.types import NO_DEFECT

# Pixel sizes below are given for a 640 px wide image and scaled with the image width, except
# those of fine-defect mode (and its defects and camera blur), which are camera pixels.
_REFERENCE_WIDTH = 640.0
_MASK_THRESHOLD = 0.25


def generate_unit(
    rng: np.random.Generator, config: SyntheticConfig, *, label: str | None = None
) -> SyntheticUnit:
    """Draw one unit from `rng`.

    `label` forces the outcome ("no_defect", a class of DEFECT_CLASSES or a NEW_DEFECT_CLASSES
    name) instead of drawing it from `defect_rate`; the demo and the tests use it to get one
    unit of each kind. The random draws do not depend on the drift knobs, so the same `rng`
    state with a drifted config gives the same unit, labels and masks under other lighting.
    (On images far smaller than the 256 px the model sees, a defect may vanish below one
    pixel; the unit is then labelled "no_defect", never given an empty mask.)
    """
    drawn_label = _choose_label(rng, config)
    if label is None:
        label = drawn_label
    elif label != NO_DEFECT and label not in DEFECT_CLASSES + NEW_DEFECT_CLASSES:
        raise ValueError(f"unknown label {label!r}")
    return _Renderer(rng, config).render(label)


def generate_units(count: int, *, seed: int, config: SyntheticConfig) -> Iterator[SyntheticUnit]:
    """Yield `count` units; unit `i` uses `np.random.default_rng([seed, i])`."""
    if count < 0:
        raise ValueError(f"count must be zero or positive, got {count}")
    if seed < 0:
        raise ValueError(f"seed must be zero or positive, got {seed}")
    for index in range(count):
        yield generate_unit(np.random.default_rng([seed, index]), config)


def _choose_label(rng: np.random.Generator, config: SyntheticConfig) -> str:
    # Always the same three draws, so that knobs do not shift the rest of the random stream.
    defective_draw, new_draw, class_draw = rng.random(3)
    if defective_draw >= config.defect_rate:
        return NO_DEFECT
    if config.new_defect and new_draw < config.new_defect_rate:
        return config.new_defect
    return DEFECT_CLASSES[min(int(class_draw * len(DEFECT_CLASSES)), len(DEFECT_CLASSES) - 1)]


class _Renderer(DefectPainter):
    """Draws one unit. Random draws happen in a fixed order whatever the drift knobs are."""

    def __init__(self, rng: np.random.Generator, config: SyntheticConfig):
        self.rng = rng
        self.config = config
        self.width = config.width
        self.height = config.height
        self.scale = config.width / _REFERENCE_WIDTH
        # Defect sizes: scaled with the width, or (fine-defect mode) camera pixels as they are.
        self.defect_scale = 1.0 if config.fine_defects else self.scale
        self._place_unit()

    # Geometry -------------------------------------------------------------------------------

    def _place_unit(self) -> None:
        rng = self.rng
        width, height = self.width, self.height
        landscape = width >= height
        long_side, short_side = (width, height) if landscape else (height, width)
        aspect = rng.uniform(1.95, 2.2)
        body_long = rng.uniform(0.76, 0.86) * long_side
        body_long = min(body_long, 0.84 * short_side * aspect)
        self.half_a = body_long / 2
        self.half_b = body_long / aspect / 2
        self.body_radius = rng.uniform(0.16, 0.24) * self.half_b
        self.bezel = max(1.5, rng.uniform(0.035, 0.06) * 2 * self.half_b)
        self.screen_half_a = self.half_a - self.bezel
        self.screen_half_b = self.half_b - self.bezel
        self.screen_radius = max(self.body_radius - self.bezel * 0.8, 0.5)
        self.rim_width = max(1.0, rng.uniform(0.012, 0.022) * 2 * self.half_b)

        angle = math.radians(rng.normal(0.0, 1.6)) + (0.0 if landscape else math.pi / 2)
        angle += math.pi * (rng.random() < 0.5)  # the phone may lie either way round
        center_x = width / 2 + rng.uniform(-0.03, 0.03) * width
        center_y = height / 2 + rng.uniform(-0.04, 0.04) * height
        tilt_a = rng.uniform(-0.03, 0.03) / self.half_a
        tilt_b = rng.uniform(-0.03, 0.03) / self.half_b
        cos, sin = math.cos(angle), math.sin(angle)
        perspective = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [tilt_a, tilt_b, 1.0]])
        rigid = np.array([[cos, -sin, center_x], [sin, cos, center_y], [0.0, 0.0, 1.0]])
        self.homography = rigid @ perspective
        inverse = np.linalg.inv(self.homography)

        self.ys, self.xs = np.indices((height, width), dtype=np.float32)
        xs, ys = self.xs + np.float32(0.5), self.ys + np.float32(0.5)
        inverse = inverse.astype(np.float32)
        denominator = inverse[2, 0] * xs + inverse[2, 1] * ys + inverse[2, 2]
        self.local_a = (inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]) / denominator
        self.local_b = (inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]) / denominator

        # Every pixel the body touches, and a margin: what only shows on the phone is computed here.
        corners = np.array(
            [
                [sign_a * (self.half_a + 1), sign_b * (self.half_b + 1), 1.0]
                for sign_a in (-1, 1)
                for sign_b in (-1, 1)
            ]
        )
        projected = corners @ self.homography.T
        corner_x, corner_y = projected[:, 0] / projected[:, 2], projected[:, 1] / projected[:, 2]
        self.body_window = (span(corner_y, height, margin=3), span(corner_x, width, margin=3))

        # The unit's own frame as a raster: where defects are drawn before the camera sees them.
        self.pad = 4
        self.canvas_shape = (
            int(math.ceil(2 * self.half_b)) + 2 * self.pad,
            int(math.ceil(2 * self.half_a)) + 2 * self.pad,
        )
        canvas_y, canvas_x = np.indices(self.canvas_shape, dtype=np.float32) + np.float32(0.5)
        self.canvas_center = np.array([self.half_a + self.pad, self.half_b + self.pad])
        self.canvas_a = canvas_x - self.canvas_center[0]
        self.canvas_b = canvas_y - self.canvas_center[1]
        self.canvas_screen = coverage(
            rounded_rect_sdf(
                self.canvas_a, self.canvas_b, self.screen_half_a, self.screen_half_b, self.screen_radius
            )
        )
        self.canvas_body = coverage(
            rounded_rect_sdf(self.canvas_a, self.canvas_b, self.half_a, self.half_b, self.body_radius)
        )

    # Rendering ------------------------------------------------------------------------------

    def render(self, label: str) -> SyntheticUnit:
        background = self._background()
        body_coverage, glass_coverage, screen_coverage, body_rgb = self._body()
        screen_rgb, glow = self._screen()
        shadow = self._shadow()

        self.add = np.zeros((*self.canvas_shape, 3), dtype=np.float32)
        self.dark = np.zeros(self.canvas_shape, dtype=np.float32)
        self.instance_alphas: list[tuple[str, np.ndarray]] = []
        fine = self.config.fine_defects
        if fine:
            dust = self._draw_fine(label, glow)
        else:
            self._dust()
            if label != NO_DEFECT:
                draw = getattr(self, f"_draw_{label}")
                draw(self._instance_count(label), glow)

        # The camera sees the unit's frame through the homography.
        window = self.body_window
        layers = [self.add, self.dark[..., None]] + [alpha[..., None] for _, alpha in self.instance_alphas]
        if fine:
            layers.append(dust[..., None])
        stacked = np.concatenate(layers, axis=2)
        if stacked.any():
            canvas_x = self.local_a[window] + np.float32(self.canvas_center[0])
            canvas_y = self.local_b[window] + np.float32(self.canvas_center[1])
            warped = bilinear(stacked, canvas_x, canvas_y)
        else:
            warped = np.zeros((*self.local_a[window].shape, stacked.shape[2]), dtype=np.float32)
        add, dark = warped[..., :3], warped[..., 3]

        body_here, screen_here = body_coverage[window][..., None], screen_coverage[window][..., None]
        front = body_rgb * (1 - screen_here) + screen_rgb * screen_here
        front = front * (1 - dark[..., None]) + add
        front += self._glare()[..., None] * self._glare_tint * glass_coverage[window][..., None]
        background *= (1 - shadow)[..., None]
        scene = background
        scene[window] = background[window] * (1 - body_here) + front * body_here

        image = self._camera(scene)
        instance_layers = warped[..., 4 : 4 + len(self.instance_alphas)]
        instances = self._instances(label, instance_layers, screen_coverage, body_coverage)
        dust_mask = None
        if fine:
            dust_mask = self._in_frame((warped[..., -1] >= _MASK_THRESHOLD) & (body_coverage[window] >= 0.5))
        return SyntheticUnit(
            image=image,
            label=label if instances else NO_DEFECT,
            instances=instances,
            screen_mask=screen_coverage >= 0.5,
            dust_mask=dust_mask,
        )

    def _instances(
        self, label: str, alphas: np.ndarray, screen_coverage: np.ndarray, body_coverage: np.ndarray
    ) -> tuple[SyntheticInstance, ...]:
        """Masks from the warped instance layers (`alphas`, over the body window)."""
        window = self.body_window
        allowed = (body_coverage if label in NEW_DEFECT_CLASSES else screen_coverage)[window] >= 0.5
        instances = []
        for index in range(alphas.shape[2]):
            alpha = alphas[..., index] * allowed
            mask_here = alpha >= _MASK_THRESHOLD
            if not mask_here.any() and alpha.max() > 0:
                mask_here = alpha >= 0.5 * alpha.max()
            if not mask_here.any():
                continue
            mask = self._in_frame(mask_here)
            rows = np.flatnonzero(mask.any(axis=1))
            cols = np.flatnonzero(mask.any(axis=0))
            box = (int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))
            instances.append(SyntheticInstance(label=label, mask=mask, box=box))
        return tuple(instances)

    def _in_frame(self, values: np.ndarray) -> np.ndarray:
        """`values` computed over the body window, placed in an image-sized array of zeros."""
        frame = np.zeros((self.height, self.width, *values.shape[2:]), dtype=values.dtype)
        frame[self.body_window] = values
        return frame

    def _background(self) -> np.ndarray:
        rng = self.rng
        shape = (self.height, self.width)
        s = self.scale
        level = rng.uniform(0.2, 0.42)
        tints = np.array([[1.0, 1.0, 1.0], [0.94, 0.99, 1.08], [0.96, 1.04, 0.97], [1.05, 1.0, 0.93]])
        tint = tints[rng.integers(len(tints))].astype(np.float32)
        grain = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), 0.7 * max(s, 0.5))
        streaks = smooth_noise(rng, shape, (1.5 * s + 0.5, 40 * s))
        blotches = smooth_noise(rng, shape, (60 * s, 60 * s))
        texture = 0.05 * grain + rng.uniform(0.01, 0.03) * streaks + 0.025 * blotches
        light_angle = rng.uniform(0, 2 * math.pi)
        ys, xs = self.ys, self.xs
        ramp = (
            (xs - self.width / 2) * math.cos(light_angle) + (ys - self.height / 2) * math.sin(light_angle)
        ) / max(self.width, self.height)
        gray = level * (1 + rng.uniform(0.1, 0.45) * ramp) + texture
        rgb = gray[..., None] * tint
        if rng.random() < 0.5:
            # Guide rails of the fixture along the belt.
            rail_height = rng.uniform(0.05, 0.09) * self.height
            rail_level = rng.uniform(0.45, 0.7)
            for top in (True, False):
                distance = ys if top else (self.height - 1 - ys)
                inside = np.clip(rail_height - distance, 0, 1)
                profile = 0.75 + 0.25 * np.cos(np.clip(distance / rail_height, 0, 1) * math.pi * 1.5)
                rail = rail_level * profile * (1 + 0.03 * streaks)
                rgb = rgb * (1 - inside[..., None]) + rail[..., None] * inside[..., None]
        return rgb.astype(np.float32)

    def _body(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Coverage of the body, the glass and the screen (image-sized), the body's colour (window)."""
        rng = self.rng
        local_a, local_b = self.local_a[self.body_window], self.local_b[self.body_window]
        sdf = rounded_rect_sdf(local_a, local_b, self.half_a, self.half_b, self.body_radius)
        body = coverage(sdf)
        glass = coverage(sdf + self.rim_width)
        screen = coverage(
            rounded_rect_sdf(local_a, local_b, self.screen_half_a, self.screen_half_b, self.screen_radius)
        )
        metals = np.array([[0.22, 0.22, 0.24], [0.55, 0.56, 0.58], [0.62, 0.54, 0.44], [0.2, 0.25, 0.34]])
        metal = metals[rng.integers(len(metals))].astype(np.float32)
        light = rng.uniform(0, 2 * math.pi)
        grad_y, grad_x = np.gradient(sdf)
        facing = grad_x * math.cos(light) + grad_y * math.sin(light)
        rim_rgb = metal * (0.65 + 0.45 * np.clip(facing, -1, 1))[..., None]
        bezel_rgb = np.full(3, rng.uniform(0.02, 0.05), dtype=np.float32)
        rgb = rim_rgb * (1 - glass[..., None]) + bezel_rgb * glass[..., None]
        self._glare_tint = (1.0 + rng.uniform(-0.05, 0.05, 3)).astype(np.float32)
        return self._in_frame(body), self._in_frame(glass), self._in_frame(screen), rgb.astype(np.float32)

    def _screen(self) -> tuple[np.ndarray, float]:
        """The display's colour over the body window, and its glow."""
        rng = self.rng
        s = self.scale
        base = (rng.uniform(0.015, 0.04) * np.array([0.95, 1.0, 1.1])).astype(np.float32)
        glow = rng.uniform(0.03, 0.13) if rng.random() < 0.5 else 0.0
        glow_tint = (1.0 + np.array([-0.08, 0.0, 0.12]) * rng.random()).astype(np.float32)
        uneven = smooth_noise(rng, (self.height, self.width), (120 * s, 120 * s))[self.body_window]
        rgb = base + glow * glow_tint * (1 + 0.06 * uneven)[..., None]
        if rng.random() < 0.6:
            # A punch-hole camera near one short edge.
            radius = rng.uniform(0.011, 0.014) * 2 * self.half_a
            side = 1 if rng.random() < 0.5 else -1
            center_a = side * (self.screen_half_a - 2.2 * radius)
            local_a, local_b = self.local_a[self.body_window], self.local_b[self.body_window]
            distance = np.hypot(local_a - center_a, local_b)
            hole = coverage(distance - radius)
            ring = np.clip(1 - np.abs(distance - 0.6 * radius) / max(0.6 * s, 0.5), 0, 1) * hole
            rgb = rgb * (1 - hole[..., None]) + (0.008 + 0.06 * ring)[..., None] * hole[..., None]
        return rgb.astype(np.float32), float(glow)

    def _shadow(self) -> np.ndarray:
        rng = self.rng
        s = self.scale
        offset_a, offset_b = rng.uniform(2, 9) * s, rng.uniform(3, 11) * s
        sdf = rounded_rect_sdf(
            self.local_a - offset_a, self.local_b - offset_b, self.half_a, self.half_b, self.body_radius
        )
        shadow = np.clip(0.5 - sdf / max(8 * s, 1.0), 0, 1)
        return (rng.uniform(0.25, 0.5) * shadow).astype(np.float32)

    def _glare(self) -> np.ndarray:
        """Reflections of the station's lights on the glass, over the body window."""
        rng = self.rng
        ys, xs = self.ys[self.body_window], self.xs[self.body_window]
        glare = np.zeros(xs.shape, dtype=np.float32)
        size = math.hypot(self.width, self.height)
        for band in range(int(rng.integers(1, 3))):
            angle = math.radians(rng.uniform(25, 65) + 90 * (rng.random() < 0.5))
            position = rng.uniform(-0.4, 0.4) * size
            band_width = rng.uniform(0.04, 0.2) * size
            strength = rng.uniform(0.0, 0.16) if band == 0 else rng.uniform(0.0, 0.08)
            distance = (
                (xs - self.width / 2) * math.cos(angle) + (ys - self.height / 2) * math.sin(angle) - position
            )
            glare += strength * np.exp(-0.5 * (distance / band_width) ** 2)
        gradient_angle = rng.uniform(0, 2 * math.pi)
        ramp = (
            (xs - self.width / 2) * math.cos(gradient_angle)
            + (ys - self.height / 2) * math.sin(gradient_angle)
        ) / size
        glare += rng.uniform(0.0, 0.05) * np.clip(ramp + 0.5, 0, 1)
        return glare

    def _camera(self, scene: np.ndarray) -> Image.Image:
        rng = self.rng
        config = self.config
        s = self.scale
        lighting = rng.uniform(0.92, 1.08) * (1 + rng.uniform(-0.03, 0.03, 3))
        lighting = lighting * config.brightness * np.asarray(config.color_cast, dtype=np.float64)
        image = scene * lighting.astype(np.float32)

        optics = rng.uniform(0.35, 0.65) * (1.0 if config.fine_defects else max(s, 0.5))
        sigma = math.sqrt(optics**2 + config.blur**2)
        image = ndimage.gaussian_filter(image, (sigma, sigma, 0))

        ys, xs = self.ys, self.xs
        center_x = self.width * (0.5 + rng.uniform(-0.05, 0.05))
        center_y = self.height * (0.5 + rng.uniform(-0.05, 0.05))
        radius = np.hypot((xs - center_x) / (self.width / 2), (ys - center_y) / (self.width / 2))
        image *= (1 - rng.uniform(0.1, 0.3) * radius**2)[..., None]

        read_noise = rng.uniform(0.004, 0.01)
        shot_noise = rng.uniform(0.0001, 0.0004)
        normals = rng.standard_normal(image.shape, dtype=np.float32)
        image = image + normals * np.sqrt(read_noise**2 + shot_noise * np.clip(image, 0, None))

        if config.contrast != 1.0:
            mean = float(image.mean())
            image = (image - mean) * config.contrast + mean

        pixels = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
        quality = int(rng.integers(88, 97))
        buffer = io.BytesIO()
        Image.fromarray(pixels, mode="RGB").save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as compressed:
            return compressed.convert("RGB")
