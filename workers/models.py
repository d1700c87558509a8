"""Each station's training settings and the continuous-training jobs: one retraining of a station's
model each (`workers.retraining`)."""

from __future__ import annotations

from uuid import uuid4

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from inspection.models import StationSettings


class TrainingSettings(StationSettings):
    """When a station retrains, and how much worse than the champion a candidate may be."""

    section = "Training"

    retrain_after_labels = models.PositiveIntegerField(
        default=100,
        help_text="Retrain when this many units have new accepted labels since the last training "
        "(0: never on label count).",
    )
    retrain_every_hours = models.PositiveIntegerField(
        default=0,
        help_text="Also retrain on this schedule when the labels changed since the last training "
        "(0: no schedule).",
    )
    gate_coverage_margin = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="A candidate may cover this much less than the champion at the target escape rate "
        "and still go into shadow.",
    )
    gate_auroc_margin = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="A candidate's AUROC may be this much lower than the champion's and still pass.",
    )

    class Meta:
        verbose_name = "training settings"
        verbose_name_plural = "training settings"

    def __str__(self) -> str:
        return f"{self.station_id}: training settings"


class TrainingStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SHADOW = "shadow", "passed the gate: challenger in shadow"
    PASSED = "passed", "passed the gate: no champion to shadow yet"
    REJECTED = "rejected", "failed the gate"
    FAILED = "failed", "error"


ACTIVE_TRAINING_STATUSES = (TrainingStatus.QUEUED, TrainingStatus.RUNNING)


class TrainingTrigger(models.TextChoices):
    LABELS = "labels", "new labels"
    SCHEDULE = "schedule"
    ADMIN = "admin", "button in admin"
    COMMAND = "command", "manage.py retrain"
    DRIFT = "drift", "drift alarm"


class TrainingJob(models.Model):
    """One retraining of a station's model from one data set snapshot (see `workers.retraining`).

    A snapshot is trained at most once (a repeat request is a no-op), and a station has at most one
    queued or running job: both are database constraints. `attempts` counts the workers that took
    the job; `uuid` tags the MLflow runs of every attempt, so a retry finds what a killed one left.
    """

    uuid = models.UUIDField(default=uuid4, unique=True, editable=False)
    station = models.ForeignKey("inspection.Station", on_delete=models.CASCADE, related_name="training_jobs")
    snapshot = models.OneToOneField(
        "labeling.DatasetSnapshot", on_delete=models.PROTECT, related_name="training_job"
    )
    status = models.CharField(max_length=10, choices=TrainingStatus.choices, default=TrainingStatus.QUEUED)
    trigger = models.CharField(max_length=10, choices=TrainingTrigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # When the data set was read for the snapshot: labels changed after it count toward the next job.
    labels_as_of = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    # Progress of the running attempt. `heartbeat_at` is its worker's last beat (stale once the worker
    # died), or for a queued job when it was last sent to the broker.
    epoch = models.PositiveIntegerField(default=0)
    epochs = models.PositiveIntegerField(default=0)
    step = models.PositiveIntegerField(default=0)
    steps = models.PositiveIntegerField(default=0)
    loss = models.FloatField(null=True, blank=True)
    validation_loss = models.FloatField(null=True, blank=True)
    eta_seconds = models.FloatField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    candidate = models.ForeignKey(
        "models_registry.ModelVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The champion the candidate was compared with (none for a station's first model).
    champion = models.ForeignKey(
        "models_registry.ModelVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # {"split": "test", "units": n, "candidate": metrics, "champion": metrics or null}, both on the
    # snapshot's frozen test split.
    evaluation = models.JSONField(default=dict, blank=True)
    gate = models.JSONField(default=dict, blank=True)  # GateResult.as_dict()
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["station"],
                condition=models.Q(status__in=["queued", "running"]),
                name="one_active_training_per_station",
            ),
        ]
        indexes = [models.Index(fields=["station", "-created_at"], name="training_job_station_recent")]

    def __str__(self) -> str:
        return f"training job {self.pk} ({self.status})"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_TRAINING_STATUSES
