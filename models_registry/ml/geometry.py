"""How a model looks at a frame (``aspect``, ``tiles``, ``squash``): one `Geometry` per model version,
the only place original, content and view pixels are converted (docs/model.md)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from models_registry.ml.layout import MASK_STRIDE

SQUASH, ASPECT, TILES = "squash", "aspect", "tiles"
KINDS = (ASPECT, TILES, SQUASH)
# The grey of letterbox bars and of tile padding past the frame's edge (YOLO's convention).
PAD_VALUE = 114
NETWORK_MULTIPLE = 32


@dataclass(frozen=True)
class View:
    """One network input cut from the content: view pixel (u, v) is content pixel (u + x, v + y)."""

    pixels: np.ndarray  # uint8 height x width x 3
    x: int
    y: int


@dataclass(frozen=True)
class Geometry:
    kind: str
    width: int  # the network input, in pixels (a tile's side for ``tiles``)
    height: int
    scale: float = 1.0  # ``tiles``: content pixels per original pixel
    overlap: int = 0  # ``tiles``: content pixels shared by neighbouring tiles

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown geometry {self.kind!r}: use one of {', '.join(KINDS)}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value < 32 or value % NETWORK_MULTIPLE:
                raise ValueError(f"the network input {name} must be a multiple of 32, not {value}")
        if self.kind == TILES:
            if self.width != self.height:
                raise ValueError(f"tiles are square, not {self.width}x{self.height}")
            if not 0.05 <= self.scale <= 4.0:
                raise ValueError(f"the tile scale must be between 0.05 and 4, not {self.scale}")
            if not 0 <= self.overlap <= self.width // 2 or self.overlap % MASK_STRIDE:
                raise ValueError(
                    f"the tile overlap must be a multiple of {MASK_STRIDE} between 0 and half the tile "
                    f"({self.width // 2}), not {self.overlap}"
                )

    # -- description ----------------------------------------------------------------------
    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Geometry:
        return cls(
            kind=str(data["kind"]),
            width=int(data["width"]),
            height=int(data["height"]),
            scale=float(data.get("scale", 1.0)),
            overlap=int(data.get("overlap", 0)),
        )

    @classmethod
    def square(cls, size: int) -> Geometry:
        """The geometry of a bundle from before geometries: a square squash."""
        return cls(kind=SQUASH, width=size, height=size)

    @property
    def slug(self) -> str:
        """Short and stable, for model architecture names: ``aspect512x288``, ``tiles320@0.5``."""
        if self.kind == TILES:
            return f"tiles{self.width}@{self.scale:g}"
        return f"{self.kind}{self.width}x{self.height}"

    def describe(self) -> str:
        if self.kind == TILES:
            return (
                f"{self.width} px tiles at {self.scale:g}x the camera's resolution, {self.overlap} px overlap"
            )
        if self.kind == ASPECT:
            return f"the whole frame in {self.width}x{self.height}, aspect ratio kept"
        return f"the whole frame squashed to {self.width}x{self.height}"

    # -- original -> content ----------------------------------------------------------------
    def content_size(self, width: int, height: int) -> tuple[int, int]:
        """The frame's size in content pixels, for an original frame of `width` x `height`."""
        if self.kind == SQUASH:
            return self.width, self.height
        factor = min(self.width / width, self.height / height) if self.kind == ASPECT else self.scale
        return max(1, round(width * factor)), max(1, round(height * factor))

    def content_scale(self, width: int, height: int) -> tuple[float, float]:
        """Content pixels per original pixel, in x and y."""
        content_width, content_height = self.content_size(width, height)
        return content_width / width, content_height / height

    def decode_size(self, width: int, height: int) -> tuple[int, int]:
        """The least decoded size that serves: a JPEG may be decoded at a reduced DCT scale down
        to this many pixels a side, and no further."""
        return self.content_size(width, height)

    def content(self, pixels: np.ndarray, width: int, height: int) -> np.ndarray:
        """Decoded pixels (of an original frame `width` x `height`) at the content size."""
        size = self.content_size(width, height)
        if (pixels.shape[1], pixels.shape[0]) == size:
            return pixels
        resized = Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR)
        return np.asarray(resized, dtype=np.uint8)

    # -- content -> views -------------------------------------------------------------------
    def view_offsets(self, content_width: int, content_height: int) -> list[tuple[int, int]]:
        """Top-left content position of every view (negative: letterbox bars before the frame).
        Offsets are multiples of the mask stride, so masks stitch cell for cell."""
        if self.kind == TILES:
            return [
                (x, y)
                for y in _tile_starts(content_height, self.height, self.overlap)
                for x in _tile_starts(content_width, self.width, self.overlap)
            ]
        return [
            (
                -_round_down((self.width - content_width) // 2, MASK_STRIDE),
                -_round_down((self.height - content_height) // 2, MASK_STRIDE),
            )
        ]

    def views(self, content: np.ndarray) -> list[View]:
        return [
            View(crop(content, x, y, self.width, self.height), x, y)
            for x, y in self.view_offsets(content.shape[1], content.shape[0])
        ]

    def views_per_frame(self, width: int, height: int) -> int:
        return len(self.view_offsets(*self.content_size(width, height)))

    def minimum_frame(self) -> tuple[int, int]:
        """The smallest original frame worth judging: one the geometry would not have to enlarge
        more than 4 times (or, for tiles, that fills at least a quarter of a tile a side)."""
        if self.kind == TILES:
            side = math.ceil(self.width / 4 / self.scale)
            return side, side
        return math.ceil(self.width / 4), math.ceil(self.height / 4)


def _round_down(value: int, multiple: int) -> int:
    return value // multiple * multiple


def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles covering `length`, neighbours sharing at least `overlap` pixels, evenly
    spread, each a multiple of the mask stride (the last may reach a few pixels past the end)."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    span = length - tile
    return sorted({_round_nearest(k * span / (count - 1), MASK_STRIDE) for k in range(count)})


def _round_nearest(value: float, multiple: int) -> int:
    return int(round(value / multiple)) * multiple


def crop(pixels: np.ndarray, x: int, y: int, width: int, height: int, fill: int = PAD_VALUE) -> np.ndarray:
    """`pixels[y:y+height, x:x+width]`, padded with `fill` where it reaches past the edges."""
    rows, columns = pixels.shape[:2]
    if x >= 0 and y >= 0 and x + width <= columns and y + height <= rows:
        return pixels[y : y + height, x : x + width]
    out = np.full((height, width, *pixels.shape[2:]), fill, dtype=pixels.dtype)
    top, left = max(0, y), max(0, x)
    bottom, right = min(rows, y + height), min(columns, x + width)
    if bottom > top and right > left:
        out[top - y : bottom - y, left - x : right - x] = pixels[top:bottom, left:right]
    return out


def cells(length: int) -> int:
    """Mask cells covering `length` content pixels."""
    return math.ceil(length / MASK_STRIDE)


# --- Choosing a geometry from the data -----------------------------------------------------------

# Frames up to this long side are seen whole at WHOLE_SMALL px, larger ones at WHOLE_LARGE.
SMALL_FRAME = 640
WHOLE_SMALL, WHOLE_LARGE = 256, 512
# A frame is seen whole when its median defect stays at least THIN_LIMIT content pixels thick and
# SMALL_DEFECT_PIXELS content pixels large; else at the coarsest of TILE_SCALES that keeps it as
# thick: whole, if the frame at that scale still fits WHOLE_LARGE, else in tiles.
THIN_LIMIT = 1.0
SMALL_DEFECT_PIXELS = 16.0
TILE_SCALES = (0.5, 1.0)
TILE_SIDE, TILE_OVERLAP = 320, 32


@dataclass(frozen=True)
class GeometryChoice:
    geometry: Geometry
    reason: str


def choose_geometry(frame_sizes: list[tuple[int, int]], defects: list[tuple[float, float]]) -> GeometryChoice:
    """The geometry `train` uses unless told otherwise, from the training frames' sizes and their
    defects' (area as a share of the frame, thickness in original pixels): the whole frame with its
    aspect ratio kept, unless the median defect would be too thin or too small there; then the
    coarsest scale that keeps it a pixel thick, in tiles when the frame is large at that scale."""
    if not frame_sizes:
        return GeometryChoice(Geometry(ASPECT, WHOLE_SMALL, WHOLE_SMALL), "no frames to measure: 256x256")
    width, height = _median(frame_sizes)
    whole = _whole_frame(width, height)
    factor = min(whole.width / width, whole.height / height)
    if not defects:
        return GeometryChoice(
            whole, f"median frame {width}x{height}, no defect regions to measure: {whole.describe()}"
        )
    areas = sorted(area for area, _ in defects)
    thicknesses = sorted(thickness for _, thickness in defects)
    area, thickness = areas[len(areas) // 2], thicknesses[len(thicknesses) // 2]
    seen = f"median frame {width}x{height}, median defect {area:.3%} of it, {thickness:.1f} px thick"
    pixels_whole = area * width * height * factor**2
    if thickness * factor >= THIN_LIMIT and pixels_whole >= SMALL_DEFECT_PIXELS:
        return GeometryChoice(whole, f"{seen}: large enough to see whole, {whole.describe()}")
    scale = next((s for s in TILE_SCALES if thickness * s >= THIN_LIMIT), TILE_SCALES[-1])
    why = (
        f"{seen}: {thickness * factor:.2f} px thick and {pixels_whole:.0f} px large seen whole in "
        f"{whole.width}x{whole.height}, too fine"
    )
    if max(width, height) * scale <= WHOLE_LARGE:
        at_scale = _whole_frame(width, height, long_side=math.ceil(max(width, height) * scale / 32) * 32)
        return GeometryChoice(at_scale, f"{why}; {at_scale.describe()}")
    tiles = Geometry(TILES, TILE_SIDE, TILE_SIDE, scale=scale, overlap=TILE_OVERLAP)
    return GeometryChoice(tiles, f"{why}; {tiles.describe()}")


def _whole_frame(width: int, height: int, long_side: int | None = None) -> Geometry:
    """The aspect-kept rectangle for frames of this size: its long side `long_side`, or by default
    WHOLE_SMALL (the frame's own, rounded down to 32, when smaller) or WHOLE_LARGE for large
    frames; its short side the frame's aspect ratio, rounded up to 32."""
    frame_long = max(width, height)
    target = long_side or (
        WHOLE_LARGE if frame_long > SMALL_FRAME else min(WHOLE_SMALL, max(64, frame_long // 32 * 32))
    )
    short = max(32, math.ceil(target * min(width, height) / frame_long / 32) * 32)
    return Geometry(ASPECT, target, short) if width >= height else Geometry(ASPECT, short, target)


@dataclass(frozen=True)
class GeometryRequest:
    """What a user asked of `train` (`--geometry`, `--input-size`, `--tile`, ...); the rest is
    chosen from the data. `kind` "auto" leaves everything to `choose_geometry`."""

    kind: str = "auto"
    input_size: int | None = None  # the long side for aspect/squash, the tile side for tiles
    tile_scale: float | None = None
    tile_overlap: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("auto", *KINDS):
            raise ValueError(f"unknown geometry {self.kind!r}: use auto, {', '.join(KINDS)}")

    @property
    def needs_data(self) -> bool:
        return self.kind in ("auto", ASPECT) or (self.kind == TILES and self.tile_scale is None)

    def resolve(
        self, frame_sizes: list[tuple[int, int]], defects: list[tuple[float, float]]
    ) -> GeometryChoice:
        chosen = choose_geometry(frame_sizes, defects) if self.needs_data else None
        if self.kind == "auto" and self.input_size is None and self.tile_scale is None:
            return chosen
        kind = self.kind if self.kind != "auto" else chosen.geometry.kind
        if kind == SQUASH:
            side = self.input_size or WHOLE_SMALL
            return GeometryChoice(
                Geometry.square(side), f"asked for: the whole frame squashed to {side}x{side}"
            )
        if kind == ASPECT:
            whole = chosen.geometry if chosen.geometry.kind == ASPECT else _whole_frame(*_median(frame_sizes))
            if self.input_size:
                whole = _whole_frame(*_median(frame_sizes), long_side=self.input_size)
            return GeometryChoice(whole, f"asked for: {whole.describe()}")
        side = self.input_size or TILE_SIDE
        scale = self.tile_scale
        if scale is None:
            scale = chosen.geometry.scale if chosen.geometry.kind == TILES else 0.5
        overlap = TILE_OVERLAP if self.tile_overlap is None else self.tile_overlap
        tiles = Geometry(TILES, side, side, scale=scale, overlap=overlap)
        return GeometryChoice(tiles, f"asked for: {tiles.describe()}")


def _median(frame_sizes: list[tuple[int, int]]) -> tuple[int, int]:
    if not frame_sizes:
        return WHOLE_SMALL, WHOLE_SMALL
    widths = sorted(width for width, _ in frame_sizes)
    heights = sorted(height for _, height in frame_sizes)
    return widths[len(widths) // 2], heights[len(heights) // 2]
