"""Reads over data sets: what training and evaluation see."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Prefetch

from labeling.models import Annotation, AnnotationKind, Dataset, DatasetItem
from models_registry.ml.types import NO_DEFECT, Box, Sample


class UnknownDataset(LookupError):
    pass


def dataset_get(*, name: str) -> Dataset:
    try:
        return Dataset.objects.get(name=name)
    except Dataset.DoesNotExist:
        known = ", ".join(Dataset.objects.order_by("name").values_list("name", flat=True)) or "none yet"
        raise UnknownDataset(f"no dataset named {name!r} (datasets: {known})") from None


def item_sample(item: DatasetItem, annotations: Iterable[Annotation] | None = None) -> Sample:
    """One item and its current label (its active annotation rows), or just `annotations`
    (e.g. a snapshot's), as a `Sample`."""
    boxes, polygons, masks, classes = [], [], [], set()
    no_defect = False
    if annotations is None:
        annotations = [annotation for annotation in item.annotations.all() if annotation.active]
    for annotation in annotations:
        if annotation.kind == AnnotationKind.NO_DEFECT:
            no_defect = True
        elif annotation.kind == AnnotationKind.IMAGE_CLASS:
            classes.add(annotation.label)
        elif annotation.kind == AnnotationKind.BOX:
            g = annotation.geometry
            boxes.append(
                Box(float(g["x"]), float(g["y"]), float(g["width"]), float(g["height"]), annotation.label)
            )
            classes.add(annotation.label)
        elif annotation.kind == AnnotationKind.POLYGON:
            points = tuple((float(x), float(y)) for x, y in annotation.geometry["points"])
            polygons.append((annotation.label, points))
            classes.add(annotation.label)
        elif annotation.kind == AnnotationKind.MASK and annotation.mask:
            masks.append((annotation.label, annotation.mask.path))
            classes.add(annotation.label)
    classes.discard(NO_DEFECT)
    defective = True if classes else (False if no_defect else None)
    return Sample(
        key=item.image.sha256,
        image_path=item.image.file.path,
        defective=defective,
        classes=tuple(sorted(classes)),
        boxes=tuple(boxes),
        polygons=tuple(polygons),
        mask_paths=tuple(masks),
    )


def dataset_samples(*, dataset: Dataset, split: str | None = None) -> list[Sample]:
    """The labelled samples of a data set (or one split of it), in a stable order."""
    items = dataset.items.select_related("image").prefetch_related(
        Prefetch("annotations", queryset=Annotation.objects.order_by("id"))
    )
    if split is not None:
        items = items.filter(split=split)
    return [item_sample(item) for item in items.order_by("id")]
