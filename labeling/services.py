"""Writes for the labeling app.

`dataset_import` brings a data set from disk into a `Dataset`: every file is parsed and validated
first (no database access), then everything is written in one transaction. Images are stored once
per content (SHA-256) across all data sets, and an image already in the data set is left as it
is, so importing the same files again changes nothing.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction

from labeling.formats.reading import BadFile, DatasetFormatError, ImportRecord
from labeling.formats.registry import PARSERS
from labeling.models import Annotation, Dataset, DatasetItem, ImageAsset

_LOOKUP_CHUNK = 500


class DatasetImportError(Exception):
    """The import cannot start or was refused; the message says why. Nothing was written."""


class BadFilesError(DatasetImportError):
    """Bad files were found and `skip_bad` was not given: nothing was written."""

    def __init__(self, bad_files: list[BadFile]) -> None:
        self.bad_files = bad_files
        lines = "\n".join(f"  {bad_file}" for bad_file in bad_files)
        super().__init__(
            f"{len(bad_files)} bad file(s), nothing imported (use --skip-bad to import the rest):\n{lines}"
        )


@dataclass
class ImportSummary:
    """What an import did. `images_added` counts new items in the data set, `images_stored` new
    image files (the rest were already stored for another data set)."""

    dataset: str
    format: str
    dataset_created: bool = False
    images_added: int = 0
    images_stored: int = 0
    images_already_present: int = 0
    duplicates_skipped: int = 0
    annotations_by_kind: dict[str, int] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    new_classes: list[str] = field(default_factory=list)
    bad_files: list[BadFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["bad_files"] = [{"path": bad.path, "reason": bad.reason} for bad in self.bad_files]
        return data


def _without_duplicates(records: list[ImportRecord], warnings: list[str]) -> tuple[list[ImportRecord], int]:
    """Keep the first record of each image content; report the later copies as warnings."""
    first_by_hash: dict[str, ImportRecord] = {}
    kept = []
    for record in records:
        first = first_by_hash.setdefault(record.image.sha256, record)
        if first is record:
            kept.append(record)
            continue
        same_labels = first.annotations == record.annotations
        warnings.append(
            f"{record.source_name}: same image as {first.source_name}; skipped"
            + ("" if same_labels else " (its labels differ; the first file's labels were kept)")
        )
    return kept, len(records) - len(kept)


def _existing_assets(hashes: list[str]) -> dict[str, ImageAsset]:
    assets: dict[str, ImageAsset] = {}
    for start in range(0, len(hashes), _LOOKUP_CHUNK):
        chunk = hashes[start : start + _LOOKUP_CHUNK]
        assets.update((asset.sha256, asset) for asset in ImageAsset.objects.filter(sha256__in=chunk))
    return assets


def _store_image(record: ImportRecord, written_files: list[str]) -> tuple[ImageAsset, bool]:
    """The `ImageAsset` for the record's image, storing its original bytes if it is new."""
    image = record.image
    data = image.path.read_bytes()
    if hashlib.sha256(data).hexdigest() != image.sha256:
        raise DatasetImportError(f"{image.path}: file changed during the import")
    asset = ImageAsset(sha256=image.sha256, width=image.width, height=image.height, format=image.format)
    asset.file.save(f"{image.sha256}.{image.extension}", ContentFile(data), save=False)
    written_files.append(asset.file.name)
    try:
        with transaction.atomic():
            asset.save()
    except IntegrityError:
        # Stored meanwhile by a concurrent import: use that one and drop our copy.
        asset.file.storage.delete(asset.file.name)
        written_files.remove(asset.file.name)
        return ImageAsset.objects.get(sha256=image.sha256), False
    return asset, True


def _write(
    *, dataset: Dataset, records: list[ImportRecord], summary: ImportSummary, written_files: list[str]
) -> None:
    assets = _existing_assets([record.image.sha256 for record in records])
    present = set(DatasetItem.objects.filter(dataset=dataset).values_list("image_id", flat=True))
    annotations: list[Annotation] = []
    kinds: Counter[str] = Counter()
    for record in records:
        asset = assets.get(record.image.sha256)
        if asset is None:
            asset, stored = _store_image(record, written_files)
            assets[asset.sha256] = asset
            summary.images_stored += stored
        if asset.pk in present:
            summary.images_already_present += 1
            continue
        item = DatasetItem.objects.create(dataset=dataset, image=asset, source_name=record.source_name[:500])
        present.add(asset.pk)
        summary.images_added += 1
        for index, parsed in enumerate(record.annotations):
            annotation = Annotation(item=item, kind=parsed.kind, label=parsed.label, geometry=parsed.geometry)
            if parsed.mask_png is not None:
                annotation.mask.save(f"{dataset.name}-{index}.png", ContentFile(parsed.mask_png), save=False)
                written_files.append(annotation.mask.name)
            annotations.append(annotation)
            kinds[parsed.kind] += 1
    Annotation.objects.bulk_create(annotations, batch_size=500)
    summary.annotations_by_kind = dict(sorted(kinds.items()))


def dataset_import(*, path: Path | str, name: str, format: str, skip_bad: bool = False) -> ImportSummary:
    """Import the data set at `path` (in `format`, one of `labeling.formats.registry.IMPORT_FORMATS`) into the
    `Dataset` called `name`, creating it if needed.

    Every image is decoded and every label validated before anything is written. Bad files are
    listed in the summary and skipped when `skip_bad` is true; otherwise `BadFilesError` is raised
    and nothing is written: no rows, no files. Images already in the data set are left unchanged;
    new defect classes are appended after the data set's existing ones, in the source's order.

    Raises `DatasetImportError` for an unknown format, a missing path or an invalid name, and
    `DatasetFormatError` when the folder or index file cannot be read as that format.
    """
    parser = PARSERS.get(format)
    if parser is None:
        raise DatasetImportError(f"unknown format {format!r}; choose one of {', '.join(PARSERS)}")
    try:
        validate_slug(name)
    except ValidationError as error:
        raise DatasetImportError(
            f"invalid data set name {name!r}: use letters, digits, '-' and '_'"
        ) from error
    source = Path(path).expanduser()
    if not source.exists():
        raise DatasetImportError(f"{source}: no such file or folder")
    source = source.resolve()

    parsed = parser(source)
    summary = ImportSummary(dataset=name, format=format, bad_files=parsed.bad_files, warnings=parsed.warnings)
    if parsed.bad_files and not skip_bad:
        raise BadFilesError(parsed.bad_files)
    records, summary.duplicates_skipped = _without_duplicates(parsed.records, summary.warnings)

    written_files: list[str] = []
    try:
        with transaction.atomic():
            dataset, summary.dataset_created = Dataset.objects.select_for_update().get_or_create(
                name=name, defaults={"source_format": format, "source_path": str(source)}
            )
            summary.new_classes = [name for name in parsed.classes if name not in dataset.classes]
            if summary.new_classes:
                dataset.classes = [*dataset.classes, *summary.new_classes]
                dataset.save(update_fields=["classes"])
            summary.classes = list(dataset.classes)
            _write(dataset=dataset, records=records, summary=summary, written_files=written_files)
    except BaseException:
        for file_name in written_files:
            default_storage.delete(file_name)
        raise
    return summary


__all__ = ["BadFilesError", "DatasetFormatError", "DatasetImportError", "ImportSummary", "dataset_import"]
