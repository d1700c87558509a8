"""A station's data set: inspector verdicts become labels, useful units become labeling tasks.

Each station has one `Dataset` (created on first use, or an imported one linked to it). A unit
enters it as a `DatasetItem` that shares the unit's stored image file (no copy):

- when a person decides it: the verdict is the item's image-level label at once (a pass is "no
  defect", a fail its classes and drawn boxes), and a labeling task is opened, ranked by why the
  unit is interesting (a disagreement with a model, a deferral or audit, the model's margin);
- when the model decides it alone and is uncertain (margin under `LOUPE_LABEL_UNCERTAIN_MARGIN`),
  or the unit falls in the station's random slice: a task only, as the unit has no label yet.

A later verdict on the same unit (an override) replaces the earlier verdict's label, unless a
labeler's accepted label already stands: that one is the more careful of the two.

Inspection does not import this module (it is the lower layer): it sends the signals of
`inspection.signals` inside the decision's transaction, and `LabelingConfig.ready` connects the
receivers at the bottom of this module.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from labeling.models import (
    Annotation,
    AnnotationKind,
    Dataset,
    DatasetItem,
    ImageAsset,
    LabelingSettings,
    LabelTask,
    SubmissionStatus,
    TaskStatus,
    TaskTier,
)
from models_registry.ml.types import NO_DEFECT

UNCLASSIFIED_DEFECT = "defect"  # the image-level label of a fail given without a class


def station_dataset_get(*, station) -> Dataset:
    """The station's data set, created (named `station-<slug>`) on first use, with every class
    the station lists: a class the supervisor adds later is appended (the order of the others,
    which the models' class indices follow, is kept; a class removed from the station stays, as
    its labels do)."""
    dataset = Dataset.objects.filter(station=station).first()
    if dataset is None:
        with transaction.atomic():
            dataset, _ = Dataset.objects.get_or_create(
                name=f"station-{station.slug}"[:100],
                defaults={
                    "classes": list(station.defect_classes),
                    "station": station,
                    "source_format": "station",
                },
            )
            if dataset.station_id is None:
                dataset.station = station
                dataset.save(update_fields=["station"])
    if any(name not in dataset.classes for name in station.defect_classes):
        with transaction.atomic():
            dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
            missing = [name for name in station.defect_classes if name not in dataset.classes]
            if missing:
                dataset.classes = [*dataset.classes, *missing]
                dataset.save(update_fields=["classes"])
    return dataset


def station_dataset_link(*, station, dataset: Dataset) -> Dataset:
    """Make an existing (imported) data set the station's: its frozen test split and labels
    carry on, and the station's units are added to it."""
    if Dataset.objects.filter(station=station).exclude(pk=dataset.pk).exists():
        raise ValueError(f"station {station.slug} already has a data set")
    missing = [name for name in station.defect_classes if name not in dataset.classes]
    dataset.station = station
    dataset.classes = list(dataset.classes) + missing
    dataset.save(update_fields=["station", "classes"])
    return dataset


def unit_item_ensure(*, unit, dataset: Dataset) -> DatasetItem:
    """The unit's item in the data set; the image asset points at the unit's stored file."""
    image = ImageAsset.objects.filter(sha256=unit.image_sha256).first()
    if image is None:
        image = ImageAsset(
            sha256=unit.image_sha256,
            width=unit.image_width,
            height=unit.image_height,
            format=unit.image_format,
        )
        image.file.name = unit.image.name
        image.save()
    item, _ = DatasetItem.objects.get_or_create(
        dataset=dataset,
        image=image,
        defaults={"source_name": f"unit/{unit.pk}/{unit.serial}"[:500], "unit": unit},
    )
    return item


def margin_of(prediction) -> float | None:
    """How far the model was from undecided: |2p - 1| of its defect probability."""
    if prediction is None:
        return None
    return abs(2.0 * prediction.defect_probability - 1.0)


def label_draw(station_slug: str, serial: str) -> float:
    """A number in [0, 1) fixed by station and serial, independent of the canary draw."""
    digest = hashlib.sha256(f"label\x00{station_slug}\x00{serial}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _task_upsert(
    *, station, item: DatasetItem, tier: int, margin: float | None, random_slice: bool
) -> LabelTask:
    task = LabelTask.objects.filter(item=item).first()
    if task is None:
        return LabelTask.objects.create(
            station=station, item=item, tier=tier, margin=margin, random_slice=random_slice
        )
    # A unit only ever becomes more useful: keep the best tier and the smallest margin seen.
    changed = []
    if tier < task.tier:
        task.tier = tier
        changed.append("tier")
    if margin is not None and (task.margin is None or margin < task.margin):
        task.margin = margin
        changed.append("margin")
    if random_slice and not task.random_slice:
        task.random_slice = True
        changed.append("random_slice")
    if changed:
        task.save(update_fields=[*changed, "updated_at"])
    return task


def automatic_decision_consider(*, unit, prediction, station) -> LabelTask | None:
    """A unit the model decided alone: a task if the model was uncertain or the unit is in the
    random slice, else nothing (and no query). Runs inside the unit's transaction."""
    margin = margin_of(prediction)
    uncertain = margin is not None and margin < settings.LOUPE_LABEL_UNCERTAIN_MARGIN
    random_slice = label_draw(station.slug, unit.serial) < LabelingSettings.of(station).label_random_share
    if not (uncertain or random_slice):
        return None
    item = unit_item_ensure(unit=unit, dataset=station_dataset_get(station=station))
    tier = TaskTier.UNCERTAIN if uncertain else TaskTier.RANDOM
    return _task_upsert(station=station, item=item, tier=tier, margin=margin, random_slice=random_slice)


def _verdict_annotations(*, item: DatasetItem, decision) -> list[Annotation]:
    source = f"decision:{decision.pk}"
    if decision.verdict == "pass":
        return [Annotation(item=item, kind=AnnotationKind.NO_DEFECT, label=NO_DEFECT, source=source)]
    rows = [
        Annotation(
            item=item,
            kind=AnnotationKind.BOX,
            label=region.get("label") or UNCLASSIFIED_DEFECT,
            geometry={key: float(region[key]) for key in ("x", "y", "width", "height")},
            source=source,
        )
        for region in decision.regions
    ]
    boxed = {row.label for row in rows}
    classes = [name for name in decision.defect_classes if name not in boxed]
    if not rows and not classes:
        classes = [UNCLASSIFIED_DEFECT]
    rows += [
        Annotation(item=item, kind=AnnotationKind.IMAGE_CLASS, label=name, source=source) for name in classes
    ]
    return rows


def decision_label_record(*, decision) -> LabelTask:
    """A person's verdict on a unit: the item's image-level label, and a ranked labeling task.
    Runs inside the decision's transaction."""
    unit = decision.unit
    station = unit.station
    item = unit_item_ensure(unit=unit, dataset=station_dataset_get(station=station))
    labelled_by_labeler = Annotation.objects.filter(
        item=item, active=True, submission__status=SubmissionStatus.ACCEPTED
    ).exists()
    if not labelled_by_labeler:
        Annotation.objects.filter(item=item, active=True, source__startswith="decision:").update(active=False)
        Annotation.objects.bulk_create(_verdict_annotations(item=item, decision=decision))
        item.labelled_at = timezone.now()
        item.save(update_fields=["labelled_at"])
    predictions = list(unit.predictions.all())
    champion = next((p for p in predictions if p.role != "challenger_shadow"), None)
    if any(p.verdict != decision.verdict for p in predictions):
        tier = TaskTier.DISAGREEMENT
    elif decision.reason in ("deferred", "audit"):
        tier = TaskTier.DEFERRED
    else:
        tier = TaskTier.UNCERTAIN
    task = _task_upsert(station=station, item=item, tier=tier, margin=margin_of(champion), random_slice=False)
    if task.status == TaskStatus.DONE and tier == TaskTier.DISAGREEMENT and not labelled_by_labeler:
        task.status = TaskStatus.OPEN
        task.save(update_fields=["status", "updated_at"])
    return task


def on_human_decision(*, decision, **kwargs) -> None:
    """Receiver of `inspection.signals.human_decision_recorded`."""
    decision_label_record(decision=decision)


def on_automatic_decision(*, unit, prediction, station, **kwargs) -> None:
    """Receiver of `inspection.signals.automatic_decision_recorded`."""
    automatic_decision_consider(unit=unit, prediction=prediction, station=station)
