"""Images, data sets and their labels.

An `ImageAsset` is stored once per content (SHA-256), whichever data sets or units use it.
A `DatasetItem` puts an image into a named `Dataset` with its split; its `Annotation` rows are the
labels: boxes, polygons, masks, an image-level class, or an explicit "no defect".
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from inspection.claims import Claimable
from inspection.models import StationSettings


class LabelingSettings(StationSettings):
    """What of a station's units goes to the labeling queue beyond the useful ones."""

    section = "Labeling"

    label_random_share = models.FloatField(
        default=0.05,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of units the model decided alone that go to the labeling queue at random, "
        "whatever their usefulness: an unbiased sample for evaluation and calibration.",
    )

    class Meta:
        verbose_name = "labeling settings"
        verbose_name_plural = "labeling settings"

    def __str__(self) -> str:
        return f"{self.station_id}: labeling settings"


class Dataset(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    # Ordered defect classes; the model's class indices follow this order.
    classes = models.JSONField(default=list)
    source_format = models.CharField(max_length=20, blank=True)
    source_path = models.TextField(blank=True)
    # The station whose inspector verdicts and labeling work flow into this data set, and whose
    # models retrain from it (at most one data set per station).
    station = models.OneToOneField(
        "inspection.Station", on_delete=models.PROTECT, null=True, blank=True, related_name="dataset"
    )
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
    # The line unit the image came from, for items of a station's data set.
    unit = models.ForeignKey(
        "inspection.Unit", on_delete=models.SET_NULL, null=True, blank=True, related_name="dataset_items"
    )
    # When the item's labels last changed (an inspector verdict, an accepted label): what the
    # retraining trigger counts.
    labelled_at = models.DateTimeField(null=True, blank=True, db_index=True)
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
    # "import", "decision:<id>" (an inspector's verdict) or "submission:<id>" (a labeler's work).
    source = models.CharField(max_length=50, default="import")
    submission = models.ForeignKey(
        "LabelSubmission", on_delete=models.CASCADE, null=True, blank=True, related_name="annotations"
    )
    # The item's current label is its active rows. Rows are never edited: a newer verdict or an
    # accepted label deactivates the older rows, and a submission's rows stay inactive until a
    # reviewer accepts them (only accepted labels train). Snapshots keep the ids they read.
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["item", "active"], name="annotation_item_active")]

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


class TaskTier(models.IntegerChoices):
    """Why a unit is worth labeling, most useful first."""

    DISAGREEMENT = 0, "human and model disagree"
    DEFERRED = 1, "deferred or audited by a person"
    UNCERTAIN = 2, "model uncertain"
    RANDOM = 3, "random slice"


class TaskStatus(models.TextChoices):
    OPEN = "open"
    IN_REVIEW = "in_review"
    DONE = "done"


class LabelTask(Claimable):
    """An item of a station's data set waiting for a labeler (one task per item).

    The queue is ordered by `tier`, then by the model's `margin` (smallest: most uncertain). Random
    slice tasks are drawn whatever their usefulness and served at the station's random share, so
    the labelled set keeps an unbiased sample.
    """

    station = models.ForeignKey("inspection.Station", on_delete=models.CASCADE, related_name="label_tasks")
    item = models.OneToOneField(DatasetItem, on_delete=models.CASCADE, related_name="label_task")
    tier = models.PositiveSmallIntegerField(choices=TaskTier.choices)
    # |2p - 1| of the champion's defect probability; null without a prediction.
    margin = models.FloatField(null=True, blank=True)
    random_slice = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=TaskStatus.choices, default=TaskStatus.OPEN)
    # The reviewer's comment when the last label was rejected: what the next labeler must fix.
    feedback = models.TextField(blank=True)
    # The labeler working on it (`claimed_by`, `claim_expires_at`): see Claimable.
    claim_seconds_setting = "LOUPE_LABEL_CLAIM_SECONDS"
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tier", "margin", "id"]
        indexes = [
            # The queue in the claim's order, and the random slice oldest first: small however
            # many tasks are done.
            models.Index(
                fields=["station", "tier", "margin", "id"],
                condition=models.Q(status="open"),
                name="label_task_open_queue",
            ),
            models.Index(
                fields=["station", "id"],
                condition=models.Q(status="open", random_slice=True),
                name="label_task_open_random",
            ),
        ]
        permissions = [("label_item", "Can label and review (labeler)")]

    def __str__(self) -> str:
        return f"task {self.pk} ({self.get_tier_display()}, {self.status})"


class SubmissionStatus(models.TextChoices):
    PENDING = "pending", "waiting for review"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FIXED = "fixed", "fixed by the reviewer"


class LabelSubmission(Claimable):
    """A labeler's answer to a task: its annotation rows (inactive until accepted), or no defect.

    A reviewer other than the author accepts it (its rows become the item's label), rejects it
    with a comment (the task goes back to the queue), or fixes it (the reviewer's corrected
    submission is accepted in its place; this one is marked fixed)."""

    task = models.ForeignKey(LabelTask, on_delete=models.CASCADE, related_name="submissions")
    station = models.ForeignKey("inspection.Station", on_delete=models.CASCADE, related_name="+")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    no_defect = models.BooleanField(default=False)
    status = models.CharField(
        max_length=10, choices=SubmissionStatus.choices, default=SubmissionStatus.PENDING
    )
    # The submission this one corrects (a reviewer's fix).
    fixes = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    review_comment = models.TextField(blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    # The reviewer working on it (`claimed_by`, `claim_expires_at`): see Claimable.
    claim_seconds_setting = "LOUPE_LABEL_CLAIM_SECONDS"
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["station", "id"],
                condition=models.Q(status="pending"),
                name="label_submission_review_queue",
            ),
        ]

    def __str__(self) -> str:
        return f"submission {self.pk} ({self.status})"
