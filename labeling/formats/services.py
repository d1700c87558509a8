"""Exporting a data set to a folder (or a zip) in a format `import_dataset` reads back, atomically:
`dataset_export` moves the finished export into place and only replaces a previous export."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO

import numpy as np
from django.db.models import Prefetch
from PIL import Image

from labeling.formats.reading import IMAGE_EXTENSIONS, STORED_EXTENSIONS, binarize_mask
from labeling.formats.registry import EXPORT_FORMATS, PREDICTIONS_FORMAT, WRITERS
from labeling.formats.writing import DatasetExportError, ExportAnnotation, ExportCounts, ExportItem
from labeling.models import Annotation, Dataset, DatasetItem, ImageAsset, Split
from models_registry.models import ModelVersion

MANIFEST_FILE = ".loupe-export"
_CHUNK_SIZE = 200

# Regions (dicts with x, y, width, height in pixels, label, score) for an item, or None when no
# prediction is available; or a mapping from image SHA-256 to such regions.
PredictionsSource = Callable[[DatasetItem], Sequence[Mapping] | None] | Mapping[str, Sequence[Mapping]]


@dataclass
class ExportSummary:
    """What an export wrote. `objects` counts the labels written, by kind; `left_out` the images
    the format could not express truthfully, by reason; `approximated` what was changed to fit."""

    dataset: str
    format: str
    out: str
    split: str | None = None
    images: int = 0
    no_defect: int = 0
    unlabeled: int = 0
    with_predictions: int = 0
    objects: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, int] = field(default_factory=dict)
    approximated: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        where = f"the {self.split} split of " if self.split else ""
        objects = ", ".join(f"{kind} {count}" for kind, count in sorted(self.objects.items())) or "none"
        parts = [f"{self.no_defect} no defect"]
        if self.format == PREDICTIONS_FORMAT:
            parts += [f"{self.unlabeled} unlabeled", f"{self.with_predictions} with predictions"]
        parts.append(f"{sum(self.left_out.values())} left out")
        return (
            f"Exported {self.images} image(s) of {where}data set '{self.dataset}' as {self.format} "
            f"to {self.out} ({', '.join(parts)}; labels written: {objects})"
        )

    def notes(self) -> list[str]:
        notes = [f"left out {count} image(s) {reason}" for reason, count in sorted(self.left_out.items())]
        notes += [f"{what}: {count}" for what, count in sorted(self.approximated.items())]
        return notes


def _check_target(out: Path, *, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DatasetExportError(f"{out} exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        return
    if not overwrite:
        raise DatasetExportError(f"{out} is not empty (use --overwrite to replace a previous export)")
    if not (out / MANIFEST_FILE).is_file():
        raise DatasetExportError(
            f"{out} is not empty and was not written by export_dataset; --overwrite only replaces a "
            "previous export: choose a new or empty folder"
        )


def _move_into_place(staging: Path, out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        replaced = out.with_name(f".{out.name}-replaced-{uuid.uuid4().hex[:8]}")
        out.rename(replaced)
        staging.rename(out)
        shutil.rmtree(replaced)
        return
    if out.exists():
        out.rmdir()
    staging.rename(out)


def _read_mask(annotation: Annotation, image: ImageAsset) -> np.ndarray:
    try:
        with annotation.mask.storage.open(annotation.mask.name, "rb") as handle, Image.open(handle) as mask:
            if mask.size != (image.width, image.height):
                raise DatasetExportError(
                    f"mask {annotation.mask.name} is {mask.size[0]}x{mask.size[1]}, its image "
                    f"{image.width}x{image.height}"
                )
            return binarize_mask(np.array(mask.convert("L")))
    except FileNotFoundError as error:
        raise DatasetExportError(f"mask {annotation.mask.name} is missing ({error})") from error


def _export_annotation(annotation: Annotation, image: ImageAsset) -> ExportAnnotation:
    read_mask = partial(_read_mask, annotation, image) if annotation.mask else None
    return ExportAnnotation(
        kind=annotation.kind, label=annotation.label, geometry=annotation.geometry, read_mask=read_mask
    )


def _image_extension(image: ImageAsset) -> str:
    suffix = Path(image.file.name).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return suffix.lstrip(".")
    return STORED_EXTENSIONS.get(image.format, "img")


def _item_predictions(item: DatasetItem, source: PredictionsSource | None) -> tuple[dict, ...] | None:
    if source is None:
        return None
    regions = source.get(item.image.sha256) if isinstance(source, Mapping) else source(item)
    return None if regions is None else tuple(dict(region) for region in regions)


def _export_items(
    *, dataset: Dataset, split: str | None, predictions_for: PredictionsSource | None
) -> Iterator[ExportItem]:
    items = (
        dataset.items.select_related("image")
        .prefetch_related(
            Prefetch("annotations", queryset=Annotation.objects.filter(active=True).order_by("id"))
        )
        .order_by("id")
    )
    if split is not None:
        items = items.filter(split=split)
    for item in items.iterator(chunk_size=_CHUNK_SIZE):
        image = item.image
        yield ExportItem(
            sha256=image.sha256,
            source_name=item.source_name,
            width=image.width,
            height=image.height,
            extension=_image_extension(image),
            split=item.split,
            annotations=tuple(_export_annotation(annotation, image) for annotation in item.annotations.all()),
            open_image=partial(image.file.storage.open, image.file.name, "rb"),
            predictions=_item_predictions(item, predictions_for),
        )


def _summary(
    *, dataset: Dataset, format: str, out: Path, split: str | None, counts: ExportCounts
) -> ExportSummary:
    return ExportSummary(
        dataset=dataset.name,
        format=format,
        out=str(out),
        split=split,
        images=counts.images,
        no_defect=counts.no_defect,
        unlabeled=counts.unlabeled,
        with_predictions=counts.with_predictions,
        objects=dict(sorted(counts.objects.items())),
        left_out=dict(sorted(counts.left_out.items())),
        approximated=dict(sorted(counts.approximated.items())),
    )


def dataset_export(
    *,
    dataset: Dataset,
    format: str,
    out: Path | str,
    split: str | None = None,
    predictions_for: PredictionsSource | None = None,
    predictions_model_version: str = "",
    overwrite: bool = False,
) -> ExportSummary:
    """Export `dataset` (or one split of it) into the folder `out` in `format` (one of
    `registry.EXPORT_FORMATS`), copying the stored image files unchanged.

    `predictions_for` (Label Studio only) gives each item's predicted regions, written as the
    task's `predictions` under `predictions_model_version`. A non-empty `out` is refused unless
    `overwrite` is given and it holds a previous export, which is then replaced as a whole.
    Raises `DatasetExportError` for an unknown format or split, a refused folder, predictions
    for another format, and an export that would hold no image; nothing is written then.
    """
    writer = WRITERS.get(format)
    if writer is None:
        raise DatasetExportError(
            f"unknown export format {format!r}; choose one of {', '.join(EXPORT_FORMATS)}"
        )
    if split is not None and split not in Split.values:
        raise DatasetExportError(f"unknown split {split!r}; choose one of {', '.join(Split.values)}")
    if predictions_for is not None and format != PREDICTIONS_FORMAT:
        raise DatasetExportError(f"only the {PREDICTIONS_FORMAT} format carries predictions, not {format}")
    out = Path(out).expanduser().resolve()
    _check_target(out, overwrite=overwrite)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-export-", dir=out.parent))
    try:
        items = _export_items(dataset=dataset, split=split, predictions_for=predictions_for)
        if format == PREDICTIONS_FORMAT:
            counts = writer(staging, items, classes=dataset.classes, model_version=predictions_model_version)
        else:
            counts = writer(staging, items, classes=dataset.classes)
        summary = _summary(dataset=dataset, format=format, out=out, split=split, counts=counts)
        if not summary.images:
            where = f"its {split} split" if split else "it"
            reasons = "; ".join(summary.notes()) or f"{where} has no images"
            raise DatasetExportError(f"nothing to export from data set '{dataset.name}': {reasons}")
        manifest = {
            "exported_by": "loupe export_dataset",
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "predictions_model_version": predictions_model_version or None,
            **summary.as_dict(),
            "notes": summary.notes(),
        }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        _move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


def dataset_export_zip(*, dataset: Dataset, format: str) -> tuple[IO[bytes], ExportSummary]:
    """The whole data set exported in `format` as a zip (an unnamed temporary file, deleted when
    closed, read from its start), its files under one `<name>-<format>/` folder."""
    with tempfile.TemporaryDirectory(prefix="loupe-export-") as temporary:
        folder = Path(temporary) / f"{dataset.name}-{format}"
        summary = dataset_export(dataset=dataset, format=format, out=folder)
        archive = tempfile.TemporaryFile()
        try:
            with zipfile.ZipFile(archive, "w") as zip_file:
                for path in sorted(folder.rglob("*")):
                    if not path.is_file():
                        continue
                    # Images are already compressed: store them as they are.
                    compression = (
                        zipfile.ZIP_STORED if path.suffix in IMAGE_EXTENSIONS else zipfile.ZIP_DEFLATED
                    )
                    zip_file.write(
                        path, path.relative_to(folder.parent).as_posix(), compress_type=compression
                    )
        except BaseException:
            archive.close()
            raise
    archive.seek(0)
    return archive, summary


def model_version_regions(*, model_version: ModelVersion) -> Callable[[DatasetItem], list[dict]]:
    """A `predictions_for` that runs a registered model version on each item's stored image and
    gives its regions (pixels, label, score)."""
    from models_registry.services import predictor_get

    predictor = predictor_get(model_version=model_version)

    def regions(item: DatasetItem) -> list[dict]:
        image = item.image
        with image.file.storage.open(image.file.name, "rb") as handle:
            prediction = predictor.predict(handle.read())
        return [
            {
                "x": region.x,
                "y": region.y,
                "width": region.width,
                "height": region.height,
                "label": region.label,
                "score": region.score,
            }
            for region in prediction.regions
        ]

    return regions
