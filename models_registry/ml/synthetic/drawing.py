"""Drawing primitives of the synthetic generator: signed distances, value noise, warping, and a
supersampled Pillow `Canvas`; sizes are pixels of the unit's own frame."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

SUPERSAMPLING = 2


def rounded_rect_sdf(a: np.ndarray, b: np.ndarray, half_a: float, half_b: float, radius: float) -> np.ndarray:
    """Signed distance to a rounded rectangle centred at the origin (negative inside)."""
    qa = np.abs(a) - (half_a - radius)
    qb = np.abs(b) - (half_b - radius)
    outside = np.hypot(np.maximum(qa, 0), np.maximum(qb, 0))
    inside = np.minimum(np.maximum(qa, qb), 0)
    return outside + inside - radius


def coverage(sdf: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage of the region sdf < 0, one pixel wide ramp."""
    return np.clip(0.5 - sdf, 0.0, 1.0).astype(np.float32)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: tuple[float, float]) -> np.ndarray:
    """Zero-mean, roughly unit-variance value noise with feature size `cell` (rows, cols) pixels."""
    height, width = shape
    grid_h = max(2, int(math.ceil(height / max(cell[0], 1.0))) + 2)
    grid_w = max(2, int(math.ceil(width / max(cell[1], 1.0))) + 2)
    grid = rng.standard_normal((grid_h, grid_w)).astype(np.float32)
    resized = Image.fromarray(grid, mode="F").resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(resized, dtype=np.float32)


def smooth_1d(rng: np.random.Generator, count: int, knots: int) -> np.ndarray:
    """A smooth random curve of `count` samples in about [-1, 1]."""
    values = rng.uniform(-1.0, 1.0, knots)
    return np.interp(np.linspace(0, knots - 1, count), np.arange(knots), values)


def blur(array: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur restricted to the bounding box of the non-zero pixels (plus a margin)."""
    if sigma <= 0:
        return array.copy()
    rows = np.flatnonzero(array.any(axis=1))
    if rows.size == 0:
        return array.copy()
    cols = np.flatnonzero(array.any(axis=0))
    margin = int(math.ceil(4 * sigma)) + 1
    r0, r1 = max(rows[0] - margin, 0), min(rows[-1] + margin + 1, array.shape[0])
    c0, c1 = max(cols[0] - margin, 0), min(cols[-1] + margin + 1, array.shape[1])
    out = np.zeros_like(array)
    out[r0:r1, c0:c1] = ndimage.gaussian_filter(array[r0:r1, c0:c1], sigma)
    return out


def bilinear(array: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Sample an (h, w, c) array at float pixel coordinates (pixel centres at i + 0.5); 0 outside.

    Defect layers are mostly zero, so only the samples whose four neighbours hold something are
    interpolated; the others are 0, exactly what interpolating them would give.
    """
    height, width, channels = array.shape
    x = xs - 0.5
    y = ys - 0.5
    x0 = np.floor(x)
    y0 = np.floor(y)
    fx = (x - x0).astype(np.float32).ravel()
    fy = (y - y0).astype(np.float32).ravel()
    x0 = x0.astype(np.int64).ravel()
    y0 = y0.astype(np.int64).ravel()
    inside = (x0 >= 0) & (x0 < width - 1) & (y0 >= 0) & (y0 < height - 1)
    index = np.clip(y0, 0, height - 2) * width + np.clip(x0, 0, width - 2)
    occupied = array.any(axis=2)
    occupied[:-1] |= occupied[1:]
    occupied[:, :-1] |= occupied[:, 1:]
    active = np.flatnonzero(inside & occupied.ravel()[index])
    index, fx, fy = index[active], fx[active, None], fy[active, None]
    flat = array.reshape(-1, channels)
    top = np.take(flat, index, axis=0) * (1 - fx) + np.take(flat, index + 1, axis=0) * fx
    bottom = np.take(flat, index + width, axis=0) * (1 - fx) + np.take(flat, index + width + 1, axis=0) * fx
    sampled = np.zeros((xs.size, channels), dtype=np.result_type(array, np.float32))
    sampled[active] = top * (1 - fy) + bottom * fy
    return sampled.reshape(*xs.shape, channels)


def span(coordinates: np.ndarray, size: int, *, margin: int) -> slice:
    """The pixels from the smallest to the largest of `coordinates`, widened by `margin`, within 0..size."""
    start = min(max(int(math.floor(coordinates.min())) - margin, 0), size)
    return slice(start, max(min(int(math.ceil(coordinates.max())) + margin, size), start))


class Canvas:
    """Supersampled Pillow drawing in the unit's own frame, read back as float coverage.

    A canvas may cover only a window of that frame: `origin` (row, column) is its top-left pixel,
    and points are still given in frame coordinates.
    """

    def __init__(self, shape: tuple[int, int], origin: tuple[int, int] = (0, 0)):
        self.shape = shape
        self.origin = origin
        height, width = shape
        self.image = Image.new("L", (width * SUPERSAMPLING, height * SUPERSAMPLING), 0)
        self.draw = ImageDraw.Draw(self.image)

    @classmethod
    def over(cls, window: tuple[slice, slice]) -> Canvas:
        rows, cols = window
        return cls((rows.stop - rows.start, cols.stop - cols.start), origin=(rows.start, cols.start))

    def _scaled(self, points) -> list[tuple[float, float]]:
        row, col = self.origin
        return [((float(x) - col) * SUPERSAMPLING, (float(y) - row) * SUPERSAMPLING) for x, y in points]

    def polyline(self, points: np.ndarray, width: float, values: np.ndarray | float = 1.0) -> None:
        """A polyline `width` pixels wide; `values` (0-1) per segment or one for all."""
        scaled = self._scaled(points)
        stroke = max(1, int(round(width * SUPERSAMPLING)))
        if np.isscalar(values):
            self.draw.line(scaled, fill=int(round(float(values) * 255)), width=stroke, joint="curve")
            return
        for start, end, value in zip(scaled[:-1], scaled[1:], values, strict=False):
            self.draw.line([start, end], fill=int(round(float(np.clip(value, 0, 1)) * 255)), width=stroke)

    def polygon(self, points: np.ndarray, value: float = 1.0) -> None:
        self.draw.polygon(self._scaled(points), fill=int(round(value * 255)))

    def rectangle(self, x0: float, y0: float, x1: float, y1: float, value: float = 1.0) -> None:
        s = SUPERSAMPLING
        row, col = self.origin
        x0, x1, y0, y1 = x0 - col, x1 - col, y0 - row, y1 - row
        self.draw.rectangle([x0 * s, y0 * s, x1 * s - 1, y1 * s - 1], fill=int(round(value * 255)))

    def ellipse(self, cx: float, cy: float, radius: float, value: float = 1.0) -> None:
        s = SUPERSAMPLING
        row, col = self.origin
        cx, cy = cx - col, cy - row
        self.draw.ellipse(
            [(cx - radius) * s, (cy - radius) * s, (cx + radius) * s, (cy + radius) * s],
            fill=int(round(value * 255)),
        )

    def coverage(self) -> np.ndarray:
        height, width = self.shape
        data = np.asarray(self.image, dtype=np.float32) / 255.0
        return data.reshape(height, SUPERSAMPLING, width, SUPERSAMPLING).mean(axis=(1, 3))


def jagged_path(
    rng: np.random.Generator, start: np.ndarray, heading: float, length: float, step: float, wander: float
) -> np.ndarray:
    """A crack-like walk: short steps, a heading that wanders and sometimes kinks."""
    points = [np.asarray(start, dtype=np.float64)]
    direction = heading
    travelled = 0.0
    while travelled < length:
        direction += rng.normal(0.0, wander)
        if rng.random() < 0.12:
            direction += rng.normal(0.0, 0.5)
        direction = heading + 0.8 * (direction - heading)
        segment = step * rng.uniform(0.5, 1.5)
        points.append(points[-1] + segment * np.array([math.cos(direction), math.sin(direction)]))
        travelled += segment
    return np.array(points)


def jagged_segment(rng: np.random.Generator, start: np.ndarray, end: np.ndarray, step: float) -> np.ndarray:
    """A jagged line between two points (the concentric rings of a spider crack)."""
    distance = float(np.hypot(*(end - start)))
    pieces = max(2, int(distance / step))
    t = np.linspace(0.0, 1.0, pieces + 1)[:, None]
    points = start + (end - start) * t
    normal = np.array([-(end - start)[1], (end - start)[0]]) / max(distance, 1e-6)
    offsets = rng.normal(0.0, step * 0.35, pieces + 1)
    offsets[[0, -1]] = 0.0
    return points + offsets[:, None] * normal
