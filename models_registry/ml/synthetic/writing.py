"""Writing a synthetic data set: the mask-folder layout or COCO (through `coco.CocoWriter`), in
one process or several, the same files either way."""

from __future__ import annotations

import ctypes
import multiprocessing
import shutil
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from models_registry.ml.coco import CocoWriter, mask_to_coco_rle
from models_registry.ml.synthetic.config import (
    DEFECT_CLASSES,
    NEW_DEFECT_CLASSES,
    SyntheticConfig,
    config_as_dict,
)
from models_registry.ml.synthetic.scene import generate_unit, generate_units
from models_registry.ml.types import Sample

DATASET_FORMATS = ("masks", "coco")
GOOD_FOLDER = "good"
JPEG_QUALITY = 92


def samples_write(folder: Path, count: int, *, seed: int, config: SyntheticConfig) -> list[Sample]:
    """`count` generated units written into `folder` as PNGs with a mask per defect, as training
    samples (for a training straight from the pipeline, without a data set's import)."""
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for index, unit in enumerate(generate_units(count, seed=seed, config=config)):
        image_path = folder / f"unit{seed}_{index}.png"
        unit.image.save(image_path)
        masks = []
        for k, instance in enumerate(unit.instances):
            mask_path = folder / f"unit{seed}_{index}_{k}.png"
            Image.fromarray(instance.mask.astype(np.uint8) * 255).save(mask_path)
            masks.append((instance.label, str(mask_path)))
        defective = unit.label != "no_defect"
        samples.append(
            Sample(
                key=image_path.name,
                image_path=str(image_path),
                defective=defective,
                classes=(unit.label,) if defective else (),
                mask_paths=tuple(masks),
            )
        )
    return samples


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
    coco = CocoWriter(config.classes)

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
        for written in written_units:
            unit_counts[written.label] += 1
            instance_counts.update(annotation["label"] for annotation in written.annotations)
            if format != "coco":
                continue
            image_id = coco.add_image(**written.image)
            for annotation in written.annotations:
                coco.add_annotation(
                    image_id,
                    annotation["label"],
                    bbox=annotation["bbox"],
                    area=annotation["area"],
                    segmentation=annotation["segmentation"],
                )
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)

    if format == "coco":
        info = {
            "description": "Loupe synthetic phone-screen units",
            "seed": seed,
            "fine_defects": config.fine_defects,
            "config": config_as_dict(config),
        }
        coco.write(out / "annotations.json", info=info)

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
            "segmentation": mask_to_coco_rle(instance.mask) if format == "coco" else None,
        }
        for instance in unit.instances
    ]
    image = {"file_name": f"{name}.jpg", "width": unit.image.width, "height": unit.image.height}
    return _WrittenUnit(label=unit.label, image=image, annotations=annotations)


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
