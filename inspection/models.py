"""Stations, the units the line posts, the model's predictions and the decisions on them.

A unit's decision is never a mutable column: every verdict, by a model version or a person, is
an append-only `DecisionEvent`, and the current decision is the latest event. `Unit.status`
only says whether the unit still waits in the human queue. The unit's `decision_*` columns copy
the latest event's verdict, source and reason (and `disagreement` whether any model disagreed
with a person), written in the event's own transaction, so that the units page can search a
million units by them through an index; the events stay the record.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from rest_framework_api_key.models import AbstractAPIKey

from inspection.claims import Claimable
from inspection.enums import (
    AutomationLevel,
    DecisionReason,
    DecisionSource,
    DisagreementKind,
    PredictionRole,
    QueueReason,
    RolloutMode,
    UnitStatus,
    Verdict,
)
from inspection.webhooks.targets import webhook_url_problem
from models_registry.ml.types import NO_DEFECT
from models_registry.models import ModelVersion

_SHARE = [MinValueValidator(0.0), MaxValueValidator(1.0)]

DEFECT_CLASS_LENGTH = 60
# Letters, digits, spaces, "-", "_" and ".": a name the pages, the data formats and the label
# files all carry as it is (no comma, slash or quote).
_DEFECT_CLASS = re.compile(r"^\w[\w .-]*$")


def defect_classes_problems(names: Any) -> list[str]:
    """What is wrong with a station's list of defect classes, one sentence a problem."""
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        return ["defect classes are a list of names"]
    problems = []
    seen: dict[str, str] = {}
    for position, name in enumerate(names, 1):
        if not name.strip():
            problems.append(f"class {position} has no name")
            continue
        if name != name.strip() or len(name) > DEFECT_CLASS_LENGTH or not _DEFECT_CLASS.match(name):
            problems.append(
                f"{name!r} is not a class name: up to {DEFECT_CLASS_LENGTH} letters, digits, spaces, "
                "'-', '_' or '.', starting with a letter or digit"
            )
        elif name.casefold() == NO_DEFECT:
            problems.append(f"{name!r} is the label of a unit without defect, not a defect class")
        elif name.casefold() in seen:
            problems.append(f"{name!r} is listed twice (as {seen[name.casefold()]!r} before)")
        seen.setdefault(name.casefold(), name)
    return problems


# A 12 MP camera (4000 x 3000) with a third to spare.
DEFAULT_MAX_IMAGE_PIXELS = 16_000_000


class Station(models.Model):
    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=200)
    line = models.CharField(max_length=200, blank=True, help_text="The production line it belongs to.")
    defect_classes = models.JSONField(default=list, blank=True)
    automation_level = models.CharField(
        max_length=10, choices=AutomationLevel.choices, default=AutomationLevel.ASSISTED
    )
    target_escape_rate = models.FloatField(
        default=0.01,
        validators=[MinValueValidator(0.0001), MaxValueValidator(0.5)],
        help_text="Largest share of the model's own decisions that may be wrong (e.g. 0.01 = 1 %). "
        "The model decides alone only above the threshold certified for this rate.",
    )
    uncertainty_band = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.5)],
        help_text="Extra margin on the certified confidence threshold: in partial automation the model "
        "decides only when its confidence is at least threshold + band.",
    )
    audit_share = models.FloatField(
        default=0.02,
        validators=_SHARE,
        help_text="Share of the units the model would decide alone that are sent blind to a person "
        "instead, in partial and in full automation: the live measure of its escape rate.",
    )
    champion = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="champion_of"
    )
    challenger = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="challenger_of"
    )
    rollout_mode = models.CharField(max_length=10, choices=RolloutMode.choices, default=RolloutMode.SHADOW)
    canary_share = models.FloatField(
        default=0.1, validators=_SHARE, help_text="Share of units the challenger decides in canary mode."
    )
    max_image_pixels = models.PositiveIntegerField(
        default=DEFAULT_MAX_IMAGE_PIXELS,
        validators=[MinValueValidator(64 * 64)],
        help_text="Largest frame this station's camera sends, in pixels (width x height): a larger one "
        "is refused from its header, before a pixel is decoded. The default is a 12 MP camera with a "
        "third to spare; at most LOUPE_MAX_IMAGE_PIXELS.",
    )
    webhook_url = models.URLField(blank=True, max_length=500)
    webhook_secret = models.CharField(
        max_length=200, blank=True, help_text="Key of the HMAC-SHA256 signature of each webhook body."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # A station with history is never deleted (its changes are append-only): it is retired, and
    # then takes no units and leaves the inspectors' queues; its history stays readable.
    retired_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["slug"]
        permissions = [("view_dashboard", "Can see the supervision dashboard")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(challenger__isnull=True) | ~models.Q(challenger=models.F("champion")),
                name="challenger_differs_from_champion",
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    @property
    def retired(self) -> bool:
        return self.retired_at is not None

    def clean(self) -> None:
        errors = {}
        if self.challenger_id is not None and self.challenger_id == self.champion_id:
            errors["challenger"] = "the challenger must be another model version than the champion"
        if self.challenger_id is not None and self.champion_id is None:
            errors["challenger"] = "a challenger needs a champion to challenge"
        problems = defect_classes_problems(self.defect_classes)
        if problems:
            errors["defect_classes"] = problems
        webhook_problem = webhook_url_problem(self.webhook_url) if self.webhook_url else None
        if webhook_problem:
            errors["webhook_url"] = webhook_problem
        if self.max_image_pixels is not None and self.max_image_pixels > settings.LOUPE_MAX_IMAGE_PIXELS:
            ceiling = settings.LOUPE_MAX_IMAGE_PIXELS
            errors["max_image_pixels"] = f"at most {ceiling:,} pixels (the server's LOUPE_MAX_IMAGE_PIXELS)"
        if self.webhook_url and not self.webhook_secret:
            errors["webhook_secret"] = "a webhook needs a secret to sign its deliveries"
        if errors:
            raise ValidationError(errors)


class StationSettings(models.Model):
    """One part's settings for a station, in that part's own table (labeling's random share,
    training's schedule and gate, supervision's drift check). Subclass it in the app that owns the
    settings: the station's services, admin form and audit trail find every subclass, so
    `inspection` never names them. A station without its row reads the fields' defaults."""

    station = models.OneToOneField(
        Station, on_delete=models.CASCADE, primary_key=True, related_name="%(class)s"
    )
    # The heading of the settings' section in the station's form.
    section: ClassVar[str] = ""

    class Meta:
        abstract = True

    @classmethod
    def of(cls, station: Station) -> StationSettings:
        """The station's row (from the join when the station was loaded with it), else an
        unsaved row of defaults, kept on the station so that a later save stores it."""
        try:
            return getattr(station, cls._meta.model_name)
        except cls.DoesNotExist:
            row = cls(station=station)
            Station._meta.get_field(cls._meta.model_name).set_cached_value(station, row)
            return row

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in cls._meta.concrete_fields if f.name != "station")

    @staticmethod
    def kinds() -> list[type[StationSettings]]:
        """Every concrete settings model of the installed apps, in INSTALLED_APPS order."""
        from django.apps import apps

        return [model for model in apps.get_models() if issubclass(model, StationSettings)]


class DeviceKey(AbstractAPIKey):
    """A production line's credential for one station (`Authorization: Api-Key <key>`).

    Stored hashed (SHA-512 of a high-entropy key); revoking it in the admin locks it out.
    """

    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="device_keys")

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "device key"
        verbose_name_plural = "device keys"


class StationChange(models.Model):
    """One changed setting of a station: who, when, old -> new (append-only)."""

    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="changes")
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True)
    changed_at = models.DateTimeField(auto_now_add=True)
    field = models.CharField(max_length=60)
    old_value = models.JSONField(null=True)
    new_value = models.JSONField(null=True)
    note = models.CharField(max_length=300, blank=True)
    # The alarm that made the system change the setting (automatic step-down), if any.
    alarm = models.ForeignKey(
        "Alarm", on_delete=models.PROTECT, null=True, blank=True, related_name="changes"
    )

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.station}: {self.field} {self.old_value!r} -> {self.new_value!r}"


class AccessChange(models.Model):
    """Who gave or took away access, and when (append-only): a device key made or revoked, an
    account made, activated or deactivated, made staff or superuser, its roles changed.
    `changed_by` is empty for the command line and for the first account, which makes itself."""

    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now_add=True)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="access_changes",
    )
    device_key = models.ForeignKey(
        DeviceKey, on_delete=models.PROTECT, null=True, blank=True, related_name="access_changes"
    )
    # "created", "revoked", "is_active", "is_staff", "is_superuser" or "roles".
    field = models.CharField(max_length=60)
    old_value = models.JSONField(null=True)
    new_value = models.JSONField(null=True)
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-changed_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(account__isnull=True, device_key__isnull=False)
                | models.Q(account__isnull=False, device_key__isnull=True),
                name="access_change_of_exactly_one",
            ),
        ]

    def __str__(self) -> str:
        subject = f"device key {self.device_key}" if self.device_key_id else f"account {self.account}"
        return f"{subject}: {self.field} {self.old_value!r} -> {self.new_value!r}"


def unit_image_path(instance: Unit, filename: str) -> str:
    received = instance.received_at
    return f"units/{instance.station.slug}/{received:%Y/%m/%d}/{filename}"


class Unit(Claimable):
    station = models.ForeignKey(Station, on_delete=models.PROTECT, related_name="units")
    serial = models.CharField(max_length=200)
    image = models.FileField(upload_to=unit_image_path, max_length=300)
    image_sha256 = models.CharField(max_length=64)
    image_width = models.PositiveIntegerField()
    image_height = models.PositiveIntegerField()
    image_format = models.CharField(max_length=10)
    # The file name the line sent; the image is stored under the extension of what it holds.
    source_filename = models.CharField(max_length=255, blank=True)
    captured_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField()
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=UnitStatus.choices)
    # The policy's routing, fixed when the unit arrives.
    automation_level = models.CharField(max_length=10, choices=AutomationLevel.choices)
    queue_reason = models.CharField(max_length=12, choices=QueueReason.choices, blank=True)
    blind = models.BooleanField(default=False, help_text="The human must not see the model's output.")
    deciding_model = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The policy snapshot the unit was routed under (level, thresholds, model, draws).
    routing = models.JSONField(default=dict, blank=True)
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)
    # The first response, replayed verbatim to a retry with the same Idempotency-Key.
    first_response = models.JSONField(default=dict, blank=True)
    # The latest decision event, copied for search (see the module's docstring): "" while pending.
    decision_verdict = models.CharField(max_length=4, choices=Verdict.choices, blank=True)
    decision_source = models.CharField(max_length=5, choices=DecisionSource.choices, blank=True)
    decision_reason = models.CharField(max_length=10, choices=DecisionReason.choices, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    disagreement = models.BooleanField(default=False, help_text="A model and a person disagreed on it.")
    # The inspector working on a pending unit (`claimed_by`, `claim_expires_at`): see Claimable.
    claim_seconds_setting = "LOUPE_CLAIM_SECONDS"

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["station", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="unique_idempotency_key_per_station",
            ),
        ]
        indexes = [
            models.Index(fields=["station", "status", "received_at"], name="unit_queue"),
            # The dashboard's periods over every station (a station's own ride on unit_queue), and
            # the units page's order (newest first, by cursor) across stations and per station.
            models.Index(fields=["received_at", "id"], name="unit_by_arrival"),
            models.Index(fields=["station", "received_at", "id"], name="unit_station_arrival"),
            # The units page's searches that a scan by arrival would read far for. A serial's
            # prefix reads the arrival from the index alone, to sort before it fetches a page.
            models.Index(
                fields=["serial", "received_at", "id"],
                name="unit_by_serial",
                opclasses=["varchar_pattern_ops", "timestamptz_ops", "int8_ops"],
            ),
            models.Index(fields=["deciding_model", "received_at", "id"], name="unit_model_arrival"),
            # The human queue: pending units oldest first; small however many units are decided.
            models.Index(
                fields=["station", "received_at", "id"],
                condition=models.Q(status="pending"),
                name="unit_pending_queue",
            ),
            # Partial automation's live escape rate: its audits by station, model and arrival;
            # small (audits only).
            models.Index(
                fields=["station", "deciding_model", "received_at"],
                condition=models.Q(queue_reason="audit", automation_level="partial"),
                name="unit_partial_audits",
            ),
        ]
        permissions = [("decide_unit", "Can decide units (inspector)")]

    def __str__(self) -> str:
        return f"{self.station.slug}/{self.serial}"

    def get_absolute_url(self) -> str:
        """The unit's page (the admin links it as "view on site")."""
        from django.urls import reverse

        return reverse("unit-page", kwargs={"pk": self.pk})


class Prediction(models.Model):
    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    role = models.CharField(max_length=20, choices=PredictionRole.choices)
    defect_probability = models.FloatField()
    label = models.CharField(max_length=100)
    confidence = models.FloatField()
    verdict = models.CharField(max_length=4)
    class_scores = models.JSONField(default=dict)
    regions = models.JSONField(default=list)
    # Set when a migration corrected `regions` after they were stored (what was done, and why).
    regions_corrected = models.CharField(max_length=300, blank=True)
    anomaly_score = models.FloatField(null=True, blank=True)
    # Pooled backbone features and input statistics, for drift monitoring.
    embedding = models.JSONField(default=dict)
    latency_ms = models.FloatField()
    timings_ms = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["unit", "model_version"], name="one_prediction_per_unit_and_model"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.unit} by {self.model_version} ({self.role}): {self.verdict}"


class DecisionEvent(models.Model):
    """A verdict on a unit; rows are only ever added."""

    unit = models.ForeignKey(Unit, on_delete=models.PROTECT, related_name="decisions")
    verdict = models.CharField(max_length=4, choices=Verdict.choices)
    defect_classes = models.JSONField(default=list, blank=True)
    regions = models.JSONField(default=list, blank=True)
    decided_by_model = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(max_length=10, choices=DecisionReason.choices)
    policy = models.JSONField(default=dict, help_text="The policy snapshot the decision was made under.")
    # Set once, at insert: on PostgreSQL a trigger refuses any UPDATE or DELETE of the row
    # (migration 0015_append_only_triggers).
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(decided_by_model__isnull=True, decided_by_user__isnull=False)
                | models.Q(decided_by_model__isnull=False, decided_by_user__isnull=True),
                name="decided_by_exactly_one",
            ),
        ]
        indexes = [
            models.Index(fields=["unit", "created_at"], name="decision_by_unit"),
            models.Index(fields=["created_at"], name="decision_by_time"),  # the dashboard's periods
            # A unit's latest human verdict (agreement, the live escape rate), read from the index.
            models.Index(
                fields=["unit", "-created_at", "-id"],
                include=["verdict"],
                condition=models.Q(decided_by_user__isnull=False),
                name="decision_human_latest",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.unit}: {self.verdict} ({self.reason})"

    @property
    def decided_by(self) -> str:
        return DecisionSource.MODEL if self.decided_by_model_id else DecisionSource.HUMAN

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ValueError("decision events are append-only: record a new event instead")
        super().save(*args, **kwargs)


class Disagreement(models.Model):
    """A human verdict and a model's differ on a unit: at image level, or on a region."""

    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="disagreements")
    decision = models.ForeignKey(DecisionEvent, on_delete=models.CASCADE, related_name="disagreements")
    prediction = models.ForeignKey(Prediction, on_delete=models.CASCADE, related_name="disagreements")
    kind = models.CharField(max_length=6, choices=DisagreementKind.choices)
    human_verdict = models.CharField(max_length=4, choices=Verdict.choices)
    model_verdict = models.CharField(max_length=4, choices=Verdict.choices)
    # For a region: {"human": region or null, "model": region or null, "iou": best overlap}.
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.unit} {self.kind}: human {self.human_verdict}, model {self.model_verdict}"


# Models of the sub-packages, imported here so that Django loads them with the app.
from inspection.history.models import UnitComment  # noqa: E402, F401
from inspection.supervision.dashboard.models import (  # noqa: E402, F401
    CountsRollup,
    RollupState,
    RollupTouch,
    VersionRollup,
)
from inspection.supervision.models import Alarm, DriftCheck  # noqa: E402, F401
from inspection.webhooks.models import WebhookDelivery  # noqa: E402, F401
