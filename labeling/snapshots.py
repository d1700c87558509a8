"""Data set snapshots: freeze what a training will read.

`dataset_snapshot_create` assigns splits to new items (the test split stays frozen, see
`labeling.splits`) and records every labelled item with the ids of its annotation rows. Annotation
rows are never edited in place (a new label is a new row), so a snapshot reads the same forever;
`snapshot_samples` rebuilds exactly those samples. Taking a snapshot of an unchanged data set
returns the latest one instead of a copy.
"""

from __future__ import annotations

from collections import Counter

from django.db import transaction
from django.db.models import Max

from labeling.models import Annotation, Dataset, DatasetItem, DatasetSnapshot
from labeling.selectors import item_sample
from labeling.splits import dataset_split_assign
from models_registry.ml.types import Sample


class EmptySnapshot(ValueError):
    """The data set has no labelled item to train on."""


def dataset_snapshot_create(*, dataset: Dataset) -> DatasetSnapshot:
    """A new snapshot of the data set's labelled items, or the latest one if nothing changed."""
    dataset_split_assign(dataset=dataset)
    with transaction.atomic():
        Dataset.objects.select_for_update().get(pk=dataset.pk)  # one snapshot at a time per data set
        items = dataset.items.select_related("image").prefetch_related("annotations").order_by("id")
        manifest = []
        counts: Counter = Counter()
        for item in items:
            current = [annotation for annotation in item.annotations.all() if annotation.active]
            annotation_ids = [annotation.id for annotation in current]
            sample = item_sample(item, current)
            if sample.defective is None:
                continue  # unlabelled: nothing to learn from yet
            manifest.append(
                {
                    "item": item.id,
                    "sha256": item.image.sha256,
                    "split": item.split,
                    "annotations": annotation_ids,
                }
            )
            counts[item.split] += 1
            counts["defective" if sample.defective else "no_defect"] += 1
        if not manifest:
            raise EmptySnapshot(f"data set {dataset.name} has no labelled item yet")
        latest = dataset.snapshots.order_by("-version").first()
        if latest is not None and latest.manifest == manifest and latest.classes == dataset.classes:
            return latest
        version = (dataset.snapshots.aggregate(top=Max("version"))["top"] or 0) + 1
        return DatasetSnapshot.objects.create(
            dataset=dataset,
            version=version,
            classes=list(dataset.classes),
            manifest=manifest,
            counts=dict(counts),
        )


def snapshot_samples(*, snapshot: DatasetSnapshot, split: str | None = None) -> list[Sample]:
    """The snapshot's samples (of one split), built from its annotation rows only."""
    entries = [entry for entry in snapshot.manifest if split is None or entry["split"] == split]
    items = DatasetItem.objects.select_related("image").in_bulk([entry["item"] for entry in entries])
    wanted = [annotation_id for entry in entries for annotation_id in entry["annotations"]]
    annotations = Annotation.objects.in_bulk(wanted)
    missing = len({entry["item"] for entry in entries} - set(items)) + len(set(wanted) - set(annotations))
    if missing:
        raise LookupError(f"snapshot {snapshot}: {missing} of its items or annotation rows were deleted")
    return [
        item_sample(items[entry["item"]], [annotations[i] for i in entry["annotations"]]) for entry in entries
    ]
