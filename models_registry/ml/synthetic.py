"""Synthetic phone-screen units, as the line's camera would photograph them.

Each unit is a phone lying on a conveyor, seen from above: a textured belt, the body with its
metal rim and black bezel, the screen (dark glass, sometimes a faint glow), soft glare from the
station's lights, the phone's shadow, vignetting, a few degrees of rotation and perspective,
sensor noise and JPEG compression. A defective unit carries one defect class (1-3 instances),
each drawn on the screen with its own pixel mask:

- ``scratch``: thin, slightly curved bright lines (light catching), sometimes 2-3 parallel;
- ``crack``: jagged branching lines, usually radiating from an impact point (spider pattern);
- ``stain``: soft, irregular, semi-transparent blobs (oil, smudge), brighter or tinted;
- ``dead_pixels``: a small cluster of bright (or, on a lit screen, dark) display pixels.

Two more kinds (``NEW_DEFECT_CLASSES``) exist only to simulate a defect the model never saw:
``chip`` (a broken edge or corner chunk of the glass, reaching into the bezel) and ``bubble``
(lamination bubbles: bright rings). Drift knobs (brightness, contrast, blur, colour cast) change
the camera and lighting without changing anything else: the same seed gives the same unit.

Sizes in the default mode grow with the image width (they are set for 640 px), so a 1920x1080
image shows the same, obvious, defects as a 640x360 one. **Fine-defect mode**
(``SyntheticConfig(fine_defects=True)``, ``generate_synthetic --fine-defects``) is the reference
case of a 1920x1080 line camera: defect sizes and the camera's blur are absolute camera pixels.
The classes stay the same (``DEFECT_CLASSES``, so the COCO categories do not change):

- ``scratch``: hairlines drawn 1-2 px wide, their masks 1.2-3 px across, 100-600 px long,
  8-50 grey levels above the screen at their peak (the mask's mean is 2-25 levels above a ring
  around it: some need a careful look at full resolution), two or three often parallel;
- ``stain``: small soft spots 4-25 px across (residue, a particle under the glass), brighter by
  8-45 grey levels at the centre or, on a lit screen, darker; the mask ends where the spot falls
  to a quarter of its peak;
- ``crack`` and ``dead_pixels`` as in the default mode, in camera pixels: 1-1.4 px core lines with
  a brighter edge, display pixels of 2-4 camera px;
- nuisance dust, not a defect: specks 1-2 px across and 2-9 grey levels bright, smaller and
  fainter than the smallest spot, never touching a defect mask (``SyntheticUnit.dust_mask``).

Dust and defects then draw from a random stream of their own, so rendering the same rng state
with ``label="no_defect"`` gives the same photograph without the defect (its clean twin).
Measured on 300 defective 1920x1080 units (seed 0, defect_rate 1): 73 % have every defect under
0.05 % of the frame (1,037 px; 44 % under 0.01 %, 91 % under 0.5 %); median instance areas are
393 px for scratches (92 % of scratch units small), 60 px for stains, 54 px for dead pixels (all
small) and 8,124 px for cracks (3 % small). A 1920x1080 unit takes about 0.9 s on one core, as in
the default mode; ``write_dataset(..., workers=2)`` writes one every ~0.56 s on two cores.

Everything is deterministic: ``generate_units(count, seed=S, config=C)`` draws unit ``i`` from
``np.random.default_rng([S, i])``, so any unit can be regenerated alone, and the same arguments
give byte-identical files. Plain numpy, scipy and Pillow; no Django, no torch.
"""

from __future__ import annotations

import ctypes
import io
import json
import math
import multiprocessing
import shutil
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from models_registry.ml.types import NO_DEFECT

DEFECT_CLASSES = ("crack", "dead_pixels", "scratch", "stain")
NEW_DEFECT_CLASSES = ("bubble", "chip")
DATASET_FORMATS = ("masks", "coco")
GOOD_FOLDER = "good"
JPEG_QUALITY = 92
MIN_SIZE = 32
MAX_SIZE = 8192

# Pixel sizes below are given for a 640 px wide image and scaled with the image width, except
# those of fine-defect mode (and its defects and camera blur), which are camera pixels.
_REFERENCE_WIDTH = 640.0
_SUPERSAMPLING = 2
_MASK_THRESHOLD = 0.25


@dataclass(frozen=True)
class SyntheticConfig:
    """What to draw. Every drift knob defaults to neutral (no drift).

    `defect_rate` is the share of defective units. `brightness` multiplies the lighting,
    `contrast` scales deviations from the image mean, `blur` is the sigma in pixels of an extra
    gaussian blur (focus drift), `color_cast` multiplies the R, G, B channels of the lighting.
    `new_defect` (one of NEW_DEFECT_CLASSES) replaces the usual defect classes on a
    `new_defect_rate` share of the defective units. `fine_defects` draws defects in absolute camera
    pixels, as a 1920x1080 line camera sees them (see the module docstring).
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


# --- Public entry points ------------------------------------------------------------------------


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


def unit_name(index: int) -> str:
    """File stem of unit `index` (0-based): unit_00001 for the first."""
    return f"unit_{index + 1:05d}"


def write_dataset(
    out: Path,
    count: int,
    *,
    seed: int,
    config: SyntheticConfig,
    format: str = "masks",
    overwrite: bool = False,
    workers: int = 1,
) -> dict:
    """Generate `count` units into the folder `out` and return a summary of what was written.

    Formats:

    - ``masks`` (the mask-folder layout of the Magnetic-Tile set, read by
      ``import_dataset --format masks``): ``out/<class>/Imgs/unit_00001.jpg`` with its binary
      mask ``unit_00001.png`` (0 or 255, union of the instances) beside it; good units go to
      ``out/good/Imgs/`` with an all-zero mask.
    - ``coco``: ``out/images/unit_00001.jpg`` and ``out/annotations.json``. Every instance is
      one annotation with ``bbox`` [x, y, w, h], ``area`` (mask pixels), ``iscrowd`` 0 and its
      exact mask as an *uncompressed RLE* ``{"size": [h, w], "counts": [...]}`` (column-major,
      starting with a run of zeros, as pycocotools reads it). RLE rather than polygons because
      cracks are webs with holes that a polygon cannot describe; ``iscrowd`` stays 0 because each
      annotation is a single object, and loaders such as torchvision's drop iscrowd=1 objects.
      Good units are images without annotations. ``info`` records the seed, the configuration
      and whether the defects are fine (``fine_defects``).

    `workers` > 1 renders and writes the units in that many processes; every unit depends only
    on (seed, index), so the files are the same whatever the number of workers.

    A non-empty `out` is refused (FileExistsError) unless `overwrite`, which first removes only
    what this function writes (``images/``, ``annotations.json``, ``<class>/Imgs/``).
    """
    if format not in DATASET_FORMATS:
        raise ValueError(f"format must be one of {', '.join(DATASET_FORMATS)}, got {format!r}")
    if count < 0:
        raise ValueError(f"count must be zero or positive, got {count}")
    if seed < 0:
        raise ValueError(f"seed must be zero or positive, got {seed}")
    if workers < 1:
        raise ValueError(f"workers must be 1 or more, got {workers}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty")
        _remove_generated(out)
    out.mkdir(parents=True, exist_ok=True)

    unit_counts: Counter[str] = Counter()
    instance_counts: Counter[str] = Counter()
    coco_images: list[dict] = []
    coco_annotations: list[dict] = []
    category_ids = {name: number for number, name in enumerate(config.classes, start=1)}

    write_one = partial(_write_unit, out, seed=seed, config=config, format=format)
    if workers == 1 or count < 2:
        written_units: Iterator[_WrittenUnit] = map(write_one, range(count))
        executor = None
    else:
        # Spawned, not forked: the caller may hold threads or database connections.
        executor = ProcessPoolExecutor(
            min(workers, count),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_keep_freed_memory,
        )
        written_units = executor.map(write_one, range(count), chunksize=max(1, count // (8 * workers)))
    try:
        for index, written in enumerate(written_units):
            unit_counts[written.label] += 1
            instance_counts.update(annotation["label"] for annotation in written.annotations)
            if format != "coco":
                continue
            image_id = index + 1
            coco_images.append({"id": image_id, **written.image})
            for annotation in written.annotations:
                coco_annotations.append(
                    {
                        "id": len(coco_annotations) + 1,
                        "image_id": image_id,
                        "category_id": category_ids[annotation["label"]],
                        **{key: value for key, value in annotation.items() if key != "label"},
                    }
                )
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)

    if format == "coco":
        document = {
            "info": {
                "description": "Loupe synthetic phone-screen units",
                "seed": seed,
                "fine_defects": config.fine_defects,
                "config": config_as_dict(config),
            },
            "categories": [
                {"id": number, "name": name, "supercategory": "defect"}
                for name, number in category_ids.items()
            ],
            "images": coco_images,
            "annotations": coco_annotations,
        }
        (out / "annotations.json").write_text(json.dumps(document, separators=(",", ":")))

    return {
        "out": str(out),
        "format": format,
        "count": count,
        "seed": seed,
        "size": f"{config.width}x{config.height}",
        "fine_defects": config.fine_defects,
        "units": dict(sorted(unit_counts.items())),
        "instances": dict(sorted(instance_counts.items())),
    }


def _keep_freed_memory() -> None:
    """Let a worker process reuse the memory of its frame-sized arrays instead of returning it.

    glibc gives large arrays (a 1920x1080 RGB float frame is 25 MB) back to the kernel when
    they are freed, and every new one is page-faulted in again: a quarter of the time of one
    process, more when two run side by side. Kept in the heap (about 50 MB more per worker), two
    workers wrote 1920x1080 units in 0.56 s each instead of 0.86 s on 2 cores. Only the worker
    processes are tuned, never the caller's; a no-op where the C library is not glibc.
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    trim_threshold, top_pad, mmap_threshold = -1, -2, -3  # glibc's M_TRIM_THRESHOLD, ...
    mallopt(mmap_threshold, 256 << 20)
    mallopt(trim_threshold, 1 << 30)
    mallopt(top_pad, 64 << 20)


@dataclass(frozen=True)
class _WrittenUnit:
    """What `write_dataset` needs to know of a unit once its files are written."""

    label: str
    image: dict
    annotations: list[dict]


def _write_unit(out: Path, index: int, *, seed: int, config: SyntheticConfig, format: str) -> _WrittenUnit:
    """Render unit `index` and write its files (run in a worker process when there are several)."""
    unit = generate_unit(np.random.default_rng([seed, index]), config)
    name = unit_name(index)
    if format == "masks":
        folder = out / (unit.label if unit.defective else GOOD_FOLDER) / "Imgs"
    else:
        folder = out / "images"
    folder.mkdir(parents=True, exist_ok=True)
    unit.image.save(folder / f"{name}.jpg", quality=JPEG_QUALITY)
    if format == "masks":
        Image.fromarray(unit.mask.astype(np.uint8) * 255, mode="L").save(folder / f"{name}.png")
    annotations = [
        {
            "label": instance.label,
            "bbox": list(instance.box),
            "area": int(instance.mask.sum()),
            "iscrowd": 0,
            "segmentation": mask_to_coco_rle(instance.mask) if format == "coco" else None,
        }
        for instance in unit.instances
    ]
    image = {"file_name": f"{name}.jpg", "width": unit.image.width, "height": unit.image.height}
    return _WrittenUnit(label=unit.label, image=image, annotations=annotations)


def mask_to_coco_rle(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE of a boolean HxW mask: column-major runs, the first one of zeros."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return {"size": list(mask.shape), "counts": []}
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(run) for run in counts]}


def coco_rle_to_mask(rle: dict) -> np.ndarray:
    """Inverse of `mask_to_coco_rle`."""
    height, width = rle["size"]
    values = np.zeros(len(rle["counts"]), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, rle["counts"])
    return flat.reshape((width, height)).T.copy()


# --- Label and dataset helpers ------------------------------------------------------------------


def _choose_label(rng: np.random.Generator, config: SyntheticConfig) -> str:
    # Always the same three draws, so that knobs do not shift the rest of the random stream.
    defective_draw, new_draw, class_draw = rng.random(3)
    if defective_draw >= config.defect_rate:
        return NO_DEFECT
    if config.new_defect and new_draw < config.new_defect_rate:
        return config.new_defect
    return DEFECT_CLASSES[min(int(class_draw * len(DEFECT_CLASSES)), len(DEFECT_CLASSES) - 1)]


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


def _remove_generated(out: Path) -> None:
    annotations = out / "annotations.json"
    if annotations.is_file():
        annotations.unlink()
    generated_folders = [out / "images"] + [
        out / name / "Imgs" for name in (GOOD_FOLDER, *DEFECT_CLASSES, *NEW_DEFECT_CLASSES)
    ]
    for folder in generated_folders:
        if folder.is_dir():
            shutil.rmtree(folder)
            if folder.name == "Imgs" and not any(folder.parent.iterdir()):
                folder.parent.rmdir()


# --- Drawing primitives -------------------------------------------------------------------------


def _rounded_rect_sdf(
    a: np.ndarray, b: np.ndarray, half_a: float, half_b: float, radius: float
) -> np.ndarray:
    """Signed distance to a rounded rectangle centred at the origin (negative inside)."""
    qa = np.abs(a) - (half_a - radius)
    qb = np.abs(b) - (half_b - radius)
    outside = np.hypot(np.maximum(qa, 0), np.maximum(qb, 0))
    inside = np.minimum(np.maximum(qa, qb), 0)
    return outside + inside - radius


def _coverage(sdf: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage of the region sdf < 0, one pixel wide ramp."""
    return np.clip(0.5 - sdf, 0.0, 1.0).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: tuple[float, float]) -> np.ndarray:
    """Zero-mean, roughly unit-variance value noise with feature size `cell` (rows, cols) pixels."""
    height, width = shape
    grid_h = max(2, int(math.ceil(height / max(cell[0], 1.0))) + 2)
    grid_w = max(2, int(math.ceil(width / max(cell[1], 1.0))) + 2)
    grid = rng.standard_normal((grid_h, grid_w)).astype(np.float32)
    resized = Image.fromarray(grid, mode="F").resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(resized, dtype=np.float32)


def _smooth_1d(rng: np.random.Generator, count: int, knots: int) -> np.ndarray:
    """A smooth random curve of `count` samples in about [-1, 1]."""
    values = rng.uniform(-1.0, 1.0, knots)
    return np.interp(np.linspace(0, knots - 1, count), np.arange(knots), values)


def _blur(array: np.ndarray, sigma: float) -> np.ndarray:
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


def _bilinear(array: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
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


def _span(coordinates: np.ndarray, size: int, *, margin: int) -> slice:
    """The pixels from the smallest to the largest of `coordinates`, widened by `margin`, within 0..size."""
    start = min(max(int(math.floor(coordinates.min())) - margin, 0), size)
    return slice(start, max(min(int(math.ceil(coordinates.max())) + margin, size), start))


class _Canvas:
    """Supersampled Pillow drawing in the unit's own frame, read back as float coverage.

    A canvas may cover only a window of that frame: `origin` (row, column) is its top-left pixel,
    and points are still given in frame coordinates.
    """

    def __init__(self, shape: tuple[int, int], origin: tuple[int, int] = (0, 0)):
        self.shape = shape
        self.origin = origin
        height, width = shape
        self.image = Image.new("L", (width * _SUPERSAMPLING, height * _SUPERSAMPLING), 0)
        self.draw = ImageDraw.Draw(self.image)

    @classmethod
    def over(cls, window: tuple[slice, slice]) -> _Canvas:
        rows, cols = window
        return cls((rows.stop - rows.start, cols.stop - cols.start), origin=(rows.start, cols.start))

    def _scaled(self, points) -> list[tuple[float, float]]:
        row, col = self.origin
        return [((float(x) - col) * _SUPERSAMPLING, (float(y) - row) * _SUPERSAMPLING) for x, y in points]

    def polyline(self, points: np.ndarray, width: float, values: np.ndarray | float = 1.0) -> None:
        """A polyline `width` pixels wide; `values` (0-1) per segment or one for all."""
        scaled = self._scaled(points)
        stroke = max(1, int(round(width * _SUPERSAMPLING)))
        if np.isscalar(values):
            self.draw.line(scaled, fill=int(round(float(values) * 255)), width=stroke, joint="curve")
            return
        for start, end, value in zip(scaled[:-1], scaled[1:], values, strict=False):
            self.draw.line([start, end], fill=int(round(float(np.clip(value, 0, 1)) * 255)), width=stroke)

    def polygon(self, points: np.ndarray, value: float = 1.0) -> None:
        self.draw.polygon(self._scaled(points), fill=int(round(value * 255)))

    def rectangle(self, x0: float, y0: float, x1: float, y1: float, value: float = 1.0) -> None:
        s = _SUPERSAMPLING
        row, col = self.origin
        x0, x1, y0, y1 = x0 - col, x1 - col, y0 - row, y1 - row
        self.draw.rectangle([x0 * s, y0 * s, x1 * s - 1, y1 * s - 1], fill=int(round(value * 255)))

    def ellipse(self, cx: float, cy: float, radius: float, value: float = 1.0) -> None:
        s = _SUPERSAMPLING
        row, col = self.origin
        cx, cy = cx - col, cy - row
        self.draw.ellipse(
            [(cx - radius) * s, (cy - radius) * s, (cx + radius) * s, (cy + radius) * s],
            fill=int(round(value * 255)),
        )

    def coverage(self) -> np.ndarray:
        height, width = self.shape
        data = np.asarray(self.image, dtype=np.float32) / 255.0
        return data.reshape(height, _SUPERSAMPLING, width, _SUPERSAMPLING).mean(axis=(1, 3))


def _jagged_path(
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


def _jagged_segment(rng: np.random.Generator, start: np.ndarray, end: np.ndarray, step: float) -> np.ndarray:
    """A jagged line between two points (the concentric rings of a spider crack)."""
    distance = float(np.hypot(*(end - start)))
    pieces = max(2, int(distance / step))
    t = np.linspace(0.0, 1.0, pieces + 1)[:, None]
    points = start + (end - start) * t
    normal = np.array([-(end - start)[1], (end - start)[0]]) / max(distance, 1e-6)
    offsets = rng.normal(0.0, step * 0.35, pieces + 1)
    offsets[[0, -1]] = 0.0
    return points + offsets[:, None] * normal


# --- The renderer -------------------------------------------------------------------------------


class _Renderer:
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
        self.body_window = (_span(corner_y, height, margin=3), _span(corner_x, width, margin=3))

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
        self.canvas_screen = _coverage(
            _rounded_rect_sdf(
                self.canvas_a, self.canvas_b, self.screen_half_a, self.screen_half_b, self.screen_radius
            )
        )
        self.canvas_body = _coverage(
            _rounded_rect_sdf(self.canvas_a, self.canvas_b, self.half_a, self.half_b, self.body_radius)
        )

    def _screen_point(self, margin: float) -> np.ndarray:
        """A random point on the screen, in canvas pixels, at least `margin` from its edge."""
        span_a = max(self.screen_half_a - margin, 1.0)
        span_b = max(self.screen_half_b - margin, 1.0)
        offset = np.array([self.rng.uniform(-span_a, span_a), self.rng.uniform(-span_b, span_b)])
        return self.canvas_center + offset

    @property
    def screen_width(self) -> float:
        return 2 * self.screen_half_a

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
            warped = _bilinear(stacked, canvas_x, canvas_y)
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

    def _instance_count(self, label: str) -> int:
        """How many instances a defective unit gets: one to three, at most two crack systems."""
        return int(self.rng.choice([1, 1, 1, 2] if label == "crack" else [1, 1, 1, 2, 2, 3]))

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
        streaks = _smooth_noise(rng, shape, (1.5 * s + 0.5, 40 * s))
        blotches = _smooth_noise(rng, shape, (60 * s, 60 * s))
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
        sdf = _rounded_rect_sdf(local_a, local_b, self.half_a, self.half_b, self.body_radius)
        body = _coverage(sdf)
        glass = _coverage(sdf + self.rim_width)
        screen = _coverage(
            _rounded_rect_sdf(local_a, local_b, self.screen_half_a, self.screen_half_b, self.screen_radius)
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
        uneven = _smooth_noise(rng, (self.height, self.width), (120 * s, 120 * s))[self.body_window]
        rgb = base + glow * glow_tint * (1 + 0.06 * uneven)[..., None]
        if rng.random() < 0.6:
            # A punch-hole camera near one short edge.
            radius = rng.uniform(0.011, 0.014) * 2 * self.half_a
            side = 1 if rng.random() < 0.5 else -1
            center_a = side * (self.screen_half_a - 2.2 * radius)
            local_a, local_b = self.local_a[self.body_window], self.local_b[self.body_window]
            distance = np.hypot(local_a - center_a, local_b)
            hole = _coverage(distance - radius)
            ring = np.clip(1 - np.abs(distance - 0.6 * radius) / max(0.6 * s, 0.5), 0, 1) * hole
            rgb = rgb * (1 - hole[..., None]) + (0.008 + 0.06 * ring)[..., None] * hole[..., None]
        return rgb.astype(np.float32), float(glow)

    def _shadow(self) -> np.ndarray:
        rng = self.rng
        s = self.scale
        offset_a, offset_b = rng.uniform(2, 9) * s, rng.uniform(3, 11) * s
        sdf = _rounded_rect_sdf(
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

    # Defects (drawn in the unit's frame, canvas pixels) ---------------------------------------

    def _visibility(self) -> float:
        """How strongly a defect shows: some are subtle, some obvious."""
        return float(self.rng.uniform(0.3, 1.0))

    def _keep(self, label: str, alpha: np.ndarray, window: tuple[slice, slice] | None = None) -> None:
        """Record an instance's coverage: canvas-sized, or over `window` of the canvas."""
        if window is not None:
            canvas_alpha = np.zeros(self.canvas_shape, dtype=np.float32)
            canvas_alpha[window] = alpha
            alpha = canvas_alpha
        self.instance_alphas.append((label, alpha.astype(np.float32)))

    def _canvas_window(self, points: np.ndarray, margin: float) -> tuple[slice, slice]:
        """The canvas pixels within `margin` of the bounding box of `points` (x, y)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        reach = int(math.ceil(margin))
        height, width = self.canvas_shape
        return _span(points[:, 1], height, margin=reach), _span(points[:, 0], width, margin=reach)

    def _window_grid(self, window: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        """Canvas x and y of the pixel centres of `window`."""
        rows, cols = window
        ys, xs = np.indices((rows.stop - rows.start, cols.stop - cols.start), dtype=np.float32)
        return xs + np.float32(cols.start + 0.5), ys + np.float32(rows.start + 0.5)

    def _dust(self) -> None:
        """Faint specks of dust on the glass: nuisances that are not defects."""
        rng = self.rng
        if rng.random() >= 0.35:
            return
        canvas = _Canvas(self.canvas_shape)
        for _ in range(int(rng.integers(1, 5))):
            x, y = self.canvas_center + rng.uniform(-1, 1, 2) * [self.half_a, self.half_b]
            canvas.ellipse(x, y, max(0.5, rng.uniform(0.6, 1.3) * self.scale), rng.uniform(0.3, 1.0))
        alpha = canvas.coverage() * self.canvas_body
        self.add += alpha[..., None] * rng.uniform(0.03, 0.08)

    def _draw_scratch(self, count: int, glow: float) -> None:
        rng = self.rng
        s = self.scale
        parallel = count >= 2 and rng.random() < 0.6
        center = self._screen_point(0.1 * self.screen_width)
        angle = rng.uniform(0, math.pi)
        length = rng.uniform(0.10, 0.40) * self.screen_width
        bend = rng.uniform(-0.05, 0.05)
        for index in range(count):
            if parallel and index > 0:
                normal = np.array([-math.sin(angle), math.cos(angle)])
                along = np.array([math.cos(angle), math.sin(angle)])
                spacing = rng.uniform(4, 12) * max(s, 0.5)
                this_center = center + normal * spacing * index + along * rng.uniform(-0.15, 0.15) * length
                this_angle = angle + rng.normal(0, 0.02)
                this_length = length * rng.uniform(0.6, 1.1)
                this_bend = bend
            else:
                this_center = center if index == 0 else self._screen_point(0.1 * self.screen_width)
                this_angle = angle if index == 0 else rng.uniform(0, math.pi)
                this_length = length if index == 0 else rng.uniform(0.10, 0.40) * self.screen_width
                this_bend = bend if index == 0 else rng.uniform(-0.05, 0.05)
            samples = max(8, int(this_length / 3))
            t = np.linspace(-0.5, 0.5, samples)
            along = np.array([math.cos(this_angle), math.sin(this_angle)])
            normal = np.array([-along[1], along[0]])
            curve = this_bend * this_length * (1 - 4 * t**2)
            jitter = rng.normal(0, 0.15 * max(s, 0.5), samples)
            points = this_center + np.outer(t * this_length, along) + np.outer(curve + jitter, normal)
            envelope = np.clip(np.sin(np.pi * (t[:-1] + 0.5 + 0.5 / samples)) * 1.8, 0, 1) ** 0.7
            modulation = 0.6 + 0.4 * _smooth_1d(rng, samples - 1, 6)
            gaps = np.where(_smooth_1d(rng, samples - 1, 9) < -0.75, 0.2, 1.0)
            canvas = _Canvas(self.canvas_shape)
            canvas.polyline(points, max(1.0, rng.uniform(1.0, 3.0) * s), envelope * modulation * gaps)
            alpha = canvas.coverage() * self.canvas_screen
            halo = _blur(alpha, 1.5 * max(s, 0.5)) * 0.5
            strength = self._visibility() * rng.uniform(0.3, 0.75)
            color = np.array([1.0, 1.0, 1.04]) + rng.uniform(-0.03, 0.03, 3)
            self.add += (alpha + halo)[..., None] * (strength * color).astype(np.float32)
            self._keep("scratch", alpha)

    def _crack_paths(self) -> list[tuple[np.ndarray, float]]:
        """Polylines of one crack system, each with a brightness factor."""
        rng = self.rng
        s = max(self.defect_scale, 0.5)
        step = rng.uniform(3, 7) * s
        paths: list[tuple[np.ndarray, float]] = []

        def add_with_branches(path: np.ndarray, heading: float, remaining: float, depth: int) -> None:
            paths.append((path, rng.uniform(0.5, 1.0)))
            if depth > 1:
                return
            branch_chance = min(0.045, 1.2 / max(len(path), 1))
            for point_index in range(1, len(path) - 1):
                if rng.random() < branch_chance:
                    side = 1 if rng.random() < 0.5 else -1
                    branch_heading = heading + side * rng.uniform(0.35, 0.9)
                    branch_length = remaining * rng.uniform(0.15, 0.5)
                    branch = _jagged_path(rng, path[point_index], branch_heading, branch_length, step, 0.1)
                    add_with_branches(branch, branch_heading, branch_length, depth + 1)

        if rng.random() < 0.7:
            # Spider pattern around an impact point.
            impact = self._screen_point(0.08 * self.screen_width)
            radials = int(rng.integers(4, 10))
            base = rng.uniform(0, 2 * math.pi)
            angles = base + 2 * math.pi * np.arange(radials) / radials + rng.normal(0, 0.25, radials)
            lengths = rng.uniform(0.1, 0.45, radials) * self.screen_width
            spokes = []
            for heading, length in zip(angles, lengths, strict=True):
                spoke = _jagged_path(rng, impact, heading, length, step, 0.08)
                spokes.append(spoke)
                add_with_branches(spoke, heading, length, 0)
            for _ in range(int(rng.integers(0, 3))):
                radius = rng.uniform(0.2, 0.7) * float(lengths.min())
                for first, second in zip(spokes, spokes[1:] + spokes[:1], strict=True):
                    if rng.random() < 0.65:
                        a = first[np.argmin(np.abs(np.hypot(*(first - impact).T) - radius))]
                        b = second[np.argmin(np.abs(np.hypot(*(second - impact).T) - radius))]
                        paths.append((_jagged_segment(rng, a, b, step), rng.uniform(0.4, 0.9)))
            crush = rng.uniform(2, 6) * s
            angles = np.sort(rng.uniform(0, 2 * math.pi, 9))
            radii = crush * rng.uniform(0.5, 1.2, 9)
            polygon = impact + np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
            paths.append((polygon, -1.0))  # marker: filled crushed area
            for angle in rng.uniform(0, 2 * math.pi, int(rng.integers(6, 14))):
                reach = crush * rng.uniform(1.5, 3.5)
                paths.append(
                    (_jagged_path(rng, impact, angle, reach, max(1.0, reach / 3), 0.3), rng.uniform(0.5, 1.0))
                )
        else:
            # A single long crack running in from an edge.
            side = int(rng.integers(4))
            along = rng.uniform(-0.8, 0.8)
            if side < 2:
                start = self.canvas_center + [
                    (-1 if side == 0 else 1) * self.screen_half_a,
                    along * self.screen_half_b,
                ]
                heading = (0.0 if side == 0 else math.pi) + rng.uniform(-0.5, 0.5)
            else:
                start = self.canvas_center + [
                    along * self.screen_half_a,
                    (-1 if side == 2 else 1) * self.screen_half_b,
                ]
                heading = (math.pi / 2 if side == 2 else -math.pi / 2) + rng.uniform(-0.5, 0.5)
            length = rng.uniform(0.3, 0.8) * self.screen_width
            add_with_branches(
                _jagged_path(rng, np.asarray(start), heading, length, step, 0.07), heading, length, 0
            )
        return paths

    def _draw_crack(self, count: int, glow: float) -> None:
        rng = self.rng
        s = self.defect_scale
        for _ in range(count):
            core_width = max(1.0, rng.uniform(0.7, 1.4) * s)
            edge_width = core_width + max(1.0, rng.uniform(0.8, 1.6) * s)
            core = _Canvas(self.canvas_shape)
            edge = _Canvas(self.canvas_shape)
            for path, brightness in self._crack_paths():
                if brightness < 0:
                    edge.polygon(path, 0.9)
                    core.polygon(path, 0.3)
                    continue
                values = np.clip(brightness + 0.45 * _smooth_1d(rng, len(path) - 1, 7), 0.15, 1.0)
                edge.polyline(path, edge_width, values)
                core.polyline(path, core_width, 1.0)
            core_alpha = core.coverage() * self.canvas_screen
            edge_alpha = edge.coverage() * self.canvas_screen
            strength = self._visibility() * rng.uniform(0.3, 0.7)
            color = np.array([1.0, 1.0, 1.0]) + rng.uniform(-0.04, 0.04, 3)
            bright = edge_alpha * (1 - 0.65 * core_alpha)
            self.add += bright[..., None] * (strength * color).astype(np.float32)
            self.dark = np.maximum(self.dark, core_alpha * rng.uniform(0.4, 0.8))
            self._keep("crack", np.maximum(edge_alpha, core_alpha))

    def _draw_stain(self, count: int, glow: float) -> None:
        rng = self.rng
        height, width = self.canvas_shape
        for _ in range(count):
            radius = rng.uniform(0.05, 0.16) * self.screen_width
            center = self._screen_point(0.3 * radius)
            reach = int(math.ceil(2.5 * radius))
            cx, cy = int(center[0]), int(center[1])
            r0, r1 = max(cy - reach, 0), min(cy + reach, height)
            c0, c1 = max(cx - reach, 0), min(cx + reach, width)
            ys, xs = np.mgrid[r0:r1, c0:c1].astype(np.float32) + 0.5
            field = np.zeros(ys.shape, dtype=np.float32)
            smear = rng.uniform(0, math.pi)
            for _ in range(int(rng.integers(2, 6))):
                offset = rng.normal(0, 0.4 * radius, 2)
                sigma_a, sigma_b = rng.uniform(0.4, 0.9) * radius, rng.uniform(0.2, 0.5) * radius
                theta = smear + rng.normal(0, 0.3)
                dx, dy = xs - center[0] - offset[0], ys - center[1] - offset[1]
                u = dx * math.cos(theta) + dy * math.sin(theta)
                v = -dx * math.sin(theta) + dy * math.cos(theta)
                field += rng.uniform(0.5, 1.0) * np.exp(-0.5 * ((u / sigma_a) ** 2 + (v / sigma_b) ** 2))
            field *= 0.85 + 0.2 * _smooth_noise(rng, field.shape, (radius / 1.5, radius / 1.5))
            field /= max(float(field.max()), 1e-6)
            alpha = np.zeros(self.canvas_shape, dtype=np.float32)
            ramp = np.clip((field - 0.15) / 0.5, 0, 1)
            alpha[r0:r1, c0:c1] = ramp * ramp * (3 - 2 * ramp)
            alpha[r0:r1, c0:c1] *= 0.9 + 0.1 * _smooth_noise(rng, field.shape, (radius / 8, radius / 8)).clip(
                -1, 1
            )
            alpha *= self.canvas_screen
            kind = rng.integers(4)
            if kind == 3:
                hue = np.zeros(self.canvas_shape, dtype=np.float32)
                hue[r0:r1, c0:c1] = rng.random() + 0.12 * _smooth_noise(rng, field.shape, (radius, radius))
                phases = np.array([0.0, 1 / 3, 2 / 3], dtype=np.float32)
                tint = 0.75 + 0.25 * np.cos(2 * math.pi * (hue[..., None] + phases))
            else:
                tint = np.array([[1.0, 1.0, 1.0], [1.0, 0.9, 0.7], [0.85, 0.95, 1.1]][kind], dtype=np.float32)
            haze = self._visibility() * rng.uniform(0.1, 0.24)
            self.add += (alpha[..., None] * haze * tint).astype(np.float32)
            self.dark = np.maximum(self.dark, alpha * rng.uniform(0.1, 0.3))
            mask_alpha = np.zeros(self.canvas_shape, dtype=np.float32)
            mask_alpha[r0:r1, c0:c1] = (field >= 0.35).astype(np.float32)
            self._keep("stain", mask_alpha * self.canvas_screen)

    def _draw_dead_pixels(self, count: int, glow: float) -> None:
        rng = self.rng
        s = self.defect_scale
        for _ in range(count):
            center = self._screen_point(0.05 * self.screen_width)
            dots = int(rng.integers(2, 9))
            spread = rng.uniform(3, 14) * max(s, 0.5)
            dark = glow >= 0.09 and rng.random() < 0.5
            size = max(1.0, rng.uniform(2.8, 4.5) * s) if dark else max(1.0, rng.uniform(2.2, 4.0) * s)
            if rng.random() < 0.3:
                along = np.arange(dots) * size * rng.choice([1.0, 2.0])
                positions = (
                    center + np.stack([along, np.zeros(dots)], axis=1)[:, :: 1 if rng.random() < 0.5 else -1]
                )
            else:
                positions = center + rng.normal(0, spread / 2, (dots, 2))
            canvas = _Canvas(self.canvas_shape)
            for x, y in positions:
                canvas.rectangle(round(x), round(y), round(x) + size, round(y) + size)
            alpha = canvas.coverage() * self.canvas_screen
            if dark:
                self.dark = np.maximum(self.dark, alpha * rng.uniform(0.75, 1.0))
            else:
                colors = np.array(
                    [[1, 1, 1], [1, 1, 1], [1, 0.2, 0.15], [0.2, 1, 0.25], [0.35, 0.5, 1], [0.3, 1, 1]]
                )
                color = colors[rng.integers(len(colors))].astype(np.float32)
                strength = 0.4 + 0.6 * self._visibility()
                self.add += alpha[..., None] * strength * color
            self._keep("dead_pixels", alpha)

    # Fine-defect mode (absolute camera pixels) ----------------------------------------------

    def _draw_fine(self, label: str, glow: float) -> np.ndarray:
        """Draw dust and the defects of fine-defect mode; return the dust's coverage (canvas-sized).

        They draw from a stream of their own, split off here: the rest of the photograph (glare,
        camera, noise) is then the same with or without the defect, so the same rng state with
        label="no_defect" renders the unit's clean twin. Dust specks that would touch a defect are
        left out, so that dust never lies in, or next to, a defect mask.
        """
        scene_rng = self.rng
        self.rng = np.random.default_rng(scene_rng.integers(2**63))
        specks = self._fine_dust()
        if label != NO_DEFECT:
            count = self._instance_count(label)
            fine_drawings = {"scratch": self._draw_hairlines, "stain": self._draw_spots}
            fine_drawings.get(label, getattr(self, f"_draw_{label}"))(count, glow)
        dust = np.zeros(self.canvas_shape, dtype=np.float32)
        for window, alpha, level in specks:
            rows, cols = window
            around = (
                slice(max(rows.start - 2, 0), rows.stop + 2),
                slice(max(cols.start - 2, 0), cols.stop + 2),
            )
            if any(instance_alpha[around].any() for _, instance_alpha in self.instance_alphas):
                continue
            self.add[window] += alpha[..., None] * np.float32(level)
            dust[window] = np.maximum(dust[window], alpha)
        self.rng = scene_rng
        return dust

    def _fine_dust(self) -> list[tuple[tuple[slice, slice], np.ndarray, float]]:
        """Specks of dust 1-2 px across and a few grey levels bright, anywhere on the phone.

        Nuisances, not defects: smaller and fainter than the smallest stain spot. Returns each
        speck's window, coverage and brightness.
        """
        rng = self.rng
        if rng.random() >= 0.6:
            return []
        specks = []
        for _ in range(int(rng.integers(1, 9))):
            center = self.canvas_center + rng.uniform(-1, 1, 2) * [self.half_a, self.half_b]
            radius = rng.uniform(0.5, 1.0)
            level = rng.uniform(0.01, 0.035)
            window = self._canvas_window(center, radius + 2)
            xs, ys = self._window_grid(window)
            alpha = _coverage(np.hypot(xs - center[0], ys - center[1]) - radius) * self.canvas_body[window]
            if alpha.any():
                specks.append((window, alpha, level))
        return specks

    def _draw_hairlines(self, count: int, glow: float) -> None:
        """Fine-mode scratches: hairlines 1-2 px wide, 100-600 px long, 8-50 grey levels at their peak.

        Two or three of them are often parallel. A line fades towards its tips and stops at 30 % of
        its peak contrast; its mask is every pixel it covers (the anti-aliased coverage >= 0.25).
        """
        rng = self.rng
        parallel = count >= 2 and rng.random() < 0.6
        first_center, first_angle, first_length, first_bend = None, 0.0, 0.0, 0.0
        for index in range(count):
            if parallel and index > 0:
                along = np.array([math.cos(first_angle), math.sin(first_angle)])
                normal = np.array([-along[1], along[0]])
                spacing = rng.uniform(5, 16)
                center = (
                    first_center + normal * spacing * index + along * rng.uniform(-0.15, 0.15) * first_length
                )
                angle = first_angle + rng.normal(0, 0.02)
                length = first_length * rng.uniform(0.6, 1.1)
                bend = first_bend
            else:
                center = self._screen_point(0.05 * self.screen_width)
                angle = rng.uniform(0, math.pi)
                length = min(math.exp(rng.uniform(math.log(100), math.log(600))), 0.6 * self.screen_width)
                bend = rng.uniform(-0.03, 0.03)
                if index == 0:
                    first_center, first_angle, first_length, first_bend = center, angle, length, bend
            width = rng.uniform(1.0, 2.2)
            peak = math.exp(rng.uniform(math.log(8), math.log(50))) / 255
            samples = max(8, int(length / 3))
            t = np.linspace(-0.5, 0.5, samples)
            along = np.array([math.cos(angle), math.sin(angle)])
            normal = np.array([-along[1], along[0]])
            curve = bend * length * (1 - 4 * t**2)
            jitter = rng.normal(0, 0.1, samples)
            points = center + np.outer(t * length, along) + np.outer(curve + jitter, normal)
            tips = np.clip(np.sin(np.pi * (t[:-1] + 0.5 + 0.5 / samples)) * 3, 0, 1)
            values = tips * (0.75 + 0.25 * _smooth_1d(rng, samples - 1, 6))
            # The line ends where it fades below 30 % of its peak: all that is drawn is in the mask.
            shown = np.flatnonzero(values >= 0.3)
            points, values = points[shown[0] : shown[-1] + 2], values[shown[0] : shown[-1] + 1]
            window = self._canvas_window(points, width + 2)
            light, shape = _Canvas.over(window), _Canvas.over(window)
            light.polyline(points, width, values)
            shape.polyline(points, width, 1.0)
            screen = self.canvas_screen[window]
            color = (np.array([1.0, 1.0, 1.04]) + rng.uniform(-0.03, 0.03, 3)) * peak
            self.add[window] += (light.coverage() * screen)[..., None] * color.astype(np.float32)
            self._keep("scratch", shape.coverage() * screen, window)

    def _draw_spots(self, count: int, glow: float) -> None:
        """Fine-mode stains: small soft spots 4-25 px across (residue, a particle under the glass).

        Brighter than the screen by 8-45 grey levels at the centre, or on a lit screen sometimes
        darker; the profile falls to a quarter of its peak at the spot's rim, where the mask ends.
        """
        rng = self.rng
        for _ in range(count):
            diameter = math.exp(rng.uniform(math.log(4), math.log(25)))
            radius = diameter / 2
            center = self._screen_point(diameter)
            aspect, angle, sharpness = rng.uniform(0.7, 1.0), rng.uniform(0, math.pi), rng.uniform(2, 4)
            window = self._canvas_window(center, 1.5 * radius + 2)
            xs, ys = self._window_grid(window)
            dx, dy = xs - center[0], ys - center[1]
            u = dx * math.cos(angle) + dy * math.sin(angle)
            v = -dx * math.sin(angle) + dy * math.cos(angle)
            distance = np.hypot(u, v / aspect) / radius
            alpha = np.exp(-math.log(4) * distance**sharpness) * self.canvas_screen[window]
            if glow >= 0.09 and rng.random() < 0.5:
                self.dark[window] = np.maximum(self.dark[window], alpha * rng.uniform(0.25, 0.6))
            else:
                tints = np.array([[1.0, 1.0, 1.0], [1.0, 0.93, 0.8], [0.9, 0.97, 1.08]])
                color = tints[rng.integers(len(tints))] * rng.uniform(8, 45) / 255
                self.add[window] += alpha[..., None] * color.astype(np.float32)
            self._keep("stain", alpha, window)

    def _draw_chip(self, count: int, glow: float) -> None:
        rng = self.rng
        s = max(self.defect_scale, 0.5)
        for _ in range(count):
            radius = rng.uniform(0.035, 0.075) * self.screen_width
            sign_a = 1 if rng.random() < 0.5 else -1
            sign_b = 1 if rng.random() < 0.5 else -1
            if rng.random() < 0.5:
                corner = np.array(
                    [sign_a * (self.half_a - self.body_radius), sign_b * (self.half_b - self.body_radius)]
                )
                point = corner + self.body_radius * np.array([sign_a, sign_b]) / math.sqrt(2)
            elif rng.random() < 0.5:
                point = np.array([rng.uniform(-0.8, 0.8) * self.half_a, sign_b * self.half_b])
            else:
                point = np.array([sign_a * self.half_a, rng.uniform(-0.6, 0.6) * self.half_b])
            inward = -point / max(float(np.hypot(*point)), 1e-6)
            center = self.canvas_center + point + inward * radius * rng.uniform(0.2, 0.6)
            vertices = int(rng.integers(9, 15))
            angles = np.sort(rng.uniform(0, 2 * math.pi, vertices))
            radii = radius * rng.uniform(0.55, 1.1, vertices)
            polygon = center + np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
            fill = _Canvas(self.canvas_shape)
            fill.polygon(polygon)
            alpha = fill.coverage() * self.canvas_body
            rim = _Canvas(self.canvas_shape)
            rim.polyline(np.vstack([polygon, polygon[:1]]), max(1.0, 1.5 * s), 1.0)
            for _ in range(int(rng.integers(2, 5))):
                start = polygon[rng.integers(vertices)]
                heading = math.atan2(*(start - center)[::-1]) + rng.normal(0, 0.4)
                rim.polyline(
                    _jagged_path(rng, start, heading, radius * rng.uniform(0.4, 1.2), 3 * s, 0.3), 1.0, 0.7
                )
            rim_alpha = rim.coverage() * self.canvas_body
            texture = 0.75 + 0.25 * _smooth_noise(rng, self.canvas_shape, (2 * s, 2 * s)).clip(-1, 1)
            level = self._visibility() * rng.uniform(0.25, 0.45)
            exposed = (
                alpha * level * texture + rim_alpha * (1 - alpha) * level * 1.3 + alpha * rim_alpha * 0.2
            )
            self.add += exposed[..., None] * np.array([1.0, 0.98, 0.95], dtype=np.float32)
            self.dark = np.maximum(self.dark, alpha * 0.7)
            self._keep("chip", alpha)

    def _draw_bubble(self, count: int, glow: float) -> None:
        rng = self.rng
        s = max(self.defect_scale, 0.5)
        anchor = self._screen_point(0.1 * self.screen_width)
        light = rng.uniform(0, 2 * math.pi)
        for index in range(count):
            radius = rng.uniform(0.015, 0.05) * self.screen_width
            center = anchor if index == 0 else anchor + rng.normal(0, 0.06 * self.screen_width, 2)
            squash, tilt = rng.uniform(0.8, 1.0), rng.uniform(0, math.pi)
            da = self.canvas_a - (center[0] - self.canvas_center[0])
            db = self.canvas_b - (center[1] - self.canvas_center[1])
            u = da * math.cos(tilt) + db * math.sin(tilt)
            v = (-da * math.sin(tilt) + db * math.cos(tilt)) / squash
            distance = np.hypot(u, v)
            ring_width = max(0.7, rng.uniform(0.7, 1.2) * s)
            facing = (da * math.cos(light) + db * math.sin(light)) / np.maximum(distance, 1e-3)
            rim = np.exp(-0.5 * ((distance - radius) / ring_width) ** 2) * (0.6 + 0.4 * facing)
            inner = np.exp(-0.5 * ((distance - radius + 2.5 * ring_width) / ring_width) ** 2)
            inside = np.clip(1 - (distance / radius) ** 2, 0, 1)
            dome = inside * np.clip(0.5 + 0.5 * facing * distance / radius, 0, 1)
            strength = self._visibility()
            light_rgb = (rim * rng.uniform(0.2, 0.45) + dome * rng.uniform(0.02, 0.07)) * strength
            tint = np.ones(3, dtype=np.float32)
            if rng.random() < 0.5:
                # Newton's rings: faint interference colours in the thin air gap.
                phases = np.array([0.0, 1 / 3, 2 / 3], dtype=np.float32)
                rings = rng.uniform(3, 6) * (distance / radius) ** 2
                tint = (0.7 + 0.3 * np.cos(2 * math.pi * (rings[..., None] + phases))).astype(np.float32)
                light_rgb = light_rgb + inside * 0.03 * strength
            light_rgb = light_rgb * self.canvas_screen
            self.add += (light_rgb[..., None] * tint).astype(np.float32)
            self.dark = np.maximum(self.dark, inner * rng.uniform(0.2, 0.5) * strength * self.canvas_screen)
            self._keep("bubble", (distance <= radius + ring_width).astype(np.float32) * self.canvas_screen)
