"""Images, data sets and their labels.

An `ImageAsset` is stored once per content (SHA-256), whichever data sets or units use it.
A `DatasetItem` puts an image into a named `Dataset` with its split; its `Annotation` rows are the
labels: boxes, polygons, masks, an image-level class, or an explicit "no defect".
"""

from __future__ import annotations

from django.db import models


class Dataset(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    # Ordered defect classes; the model's class indices follow this order.
    classes = models.JSONField(default=list)
    source_format = models.CharField(max_length=20, blank=True)
    source_path = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


def image_upload_path(instance: ImageAsset, filename: str) -> str:
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else "img"
    return f"images/{instance.sha256[:2]}/{instance.sha256}.{extension}"


class ImageAsset(models.Model):
    sha256 = models.CharField(max_length=64, unique=True)
    file = models.FileField(upload_to=image_upload_path, max_length=255)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=10)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.sha256[:12]} ({self.width}x{self.height})"


class Split(models.TextChoices):
    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"


class DatasetItem(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="items")
    image = models.ForeignKey(ImageAsset, on_delete=models.PROTECT, related_name="dataset_items")
    source_name = models.CharField(max_length=500)
    # Assigned once, by the first training on the data set; the test split never changes after.
    split = models.CharField(max_length=12, choices=Split.choices, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["dataset", "image"], name="unique_image_per_dataset")]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.dataset.name}/{self.source_name}"


def mask_upload_path(instance: Annotation, filename: str) -> str:
    return f"masks/{instance.item.image.sha256[:2]}/{instance.item.image.sha256}-{filename}"


class AnnotationKind(models.TextChoices):
    BOX = "box"
    POLYGON = "polygon"
    MASK = "mask"
    IMAGE_CLASS = "class"
    NO_DEFECT = "no_defect"


class Annotation(models.Model):
    """One label on an item.

    Geometry is in image pixels: a box is `{"x", "y", "width", "height"}`, a polygon
    `{"points": [[x, y], ...]}`; a mask is a binary PNG the size of the image.
    """

    item = models.ForeignKey(DatasetItem, on_delete=models.CASCADE, related_name="annotations")
    kind = models.CharField(max_length=12, choices=AnnotationKind.choices)
    label = models.CharField(max_length=100, blank=True)
    geometry = models.JSONField(default=dict, blank=True)
    mask = models.FileField(upload_to=mask_upload_path, blank=True, max_length=255)
    source = models.CharField(max_length=50, default="import")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind}:{self.label}"


class DatasetSnapshot(models.Model):
    """An immutable version of a data set: which items, with which annotation rows, in which split.

    Training reads a snapshot, never the live data set, so a model version names exactly what it
    learned from and is evaluated on; the test split inside it never changes across versions.
    """

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="snapshots")
    version = models.PositiveIntegerField()
    classes = models.JSONField(default=list)
    # [{"item": id, "sha256": ..., "split": ..., "annotations": [ids]}, ...], ordered by item id.
    manifest = models.JSONField(default=list)
    counts = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "version"], name="unique_snapshot_version"),
        ]
        ordering = ["dataset", "-version"]

    def __str__(self) -> str:
        return f"{self.dataset.name}@{self.version}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ValueError("a data set snapshot is immutable: make a new one")
        super().save(*args, **kwargs)
