"""Each station's drift settings, the drift checks (append-only windows compared with the
champion's reference) and the alarms they, and the camera check, raise."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, validate_email
from django.db import models

from inspection.models import Station, StationSettings
from inspection.webhooks.targets import webhook_url_problem
from models_registry.models import ModelVersion


class DriftSettings(StationSettings):
    """How a station's drift is checked, and what an alarm does to it."""

    section = "Drift and alarms"

    drift_window = models.PositiveIntegerField(
        default=200,
        validators=[MinValueValidator(20), MaxValueValidator(5000)],
        help_text="Units per drift check: each check compares the next this many units the champion "
        "predicted with its reference (larger windows see smaller shifts, later).",
    )
    drift_significance = models.FloatField(
        default=0.01,
        validators=[MinValueValidator(1e-6), MaxValueValidator(0.2)],
        help_text="Chance of a false alarm per check when nothing changed (all tests of a check "
        "together, Holm-corrected).",
    )
    alarm_step_down = models.BooleanField(
        default=True,
        help_text="When an alarm is raised, step the automation level down one notch "
        "(full -> partial -> assisted).",
    )
    alarm_retrain = models.BooleanField(
        default=False, help_text="When an alarm is raised, also start retraining on the labels collected."
    )
    alarm_emails = models.TextField(
        blank=True,
        help_text="Who is emailed each new alarm (once per alarm): addresses, one per line or "
        "separated by commas.",
    )
    alarm_chat_url = models.URLField(
        blank=True,
        max_length=500,
        help_text="A Slack or Microsoft Teams incoming-webhook URL told of each new alarm.",
    )

    class Meta:
        verbose_name = "drift settings"
        verbose_name_plural = "drift settings"

    def __str__(self) -> str:
        return f"{self.station_id}: drift settings"

    def alarm_recipients(self) -> list[str]:
        return [address for address in re.split(r"[\s,;]+", self.alarm_emails) if address]

    def clean(self) -> None:
        wrong = []
        for address in self.alarm_recipients():
            try:
                validate_email(address)
            except ValidationError:
                wrong.append(address)
        errors = {}
        if wrong:
            errors["alarm_emails"] = f"not an email address: {', '.join(wrong)}"
        chat_problem = webhook_url_problem(self.alarm_chat_url) if self.alarm_chat_url else None
        if chat_problem:
            errors["alarm_chat_url"] = chat_problem
        if errors:
            raise ValidationError(errors)


class DriftCheck(models.Model):
    """One window of live units compared with the champion's reference (append-only).

    Windows follow each other without overlap: a check covers the next `window_size` units the
    model predicted after the previous check's `last_unit_id`."""

    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="drift_checks")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    first_unit_id = models.BigIntegerField()
    last_unit_id = models.BigIntegerField()
    window_size = models.PositiveIntegerField()
    significance = models.FloatField()
    # [{kind, name, statistic, p_value, adjusted_p_value, shifted, detail}], see ml.drift.DriftTest.
    tests = models.JSONField(default=list)
    shifted = models.BooleanField(default=False)
    seconds = models.FloatField(default=0.0, help_text="How long the tests took.")
    checked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-checked_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["station", "model_version", "last_unit_id"], name="one_drift_check_per_window"
            ),
        ]
        indexes = [models.Index(fields=["station", "checked_at"], name="drift_check_by_station")]

    def __str__(self) -> str:
        state = "shifted" if self.shifted else "ok"
        return f"{self.station} units {self.first_unit_id}-{self.last_unit_id}: {state}"


class AlarmKind(models.TextChoices):
    INPUT = "input_drift", "Input drift (brightness, contrast, sharpness, colour)"
    EMBEDDING = "embedding_drift", "Embedding drift (units unlike the reference)"
    SCORE = "score_shift", "Score shift (the model is less sure)"
    AGREEMENT = "audit_agreement", "Audit agreement dropped"
    CAMERA = "camera_fault", "Camera or lighting fault (frames the model cannot judge)"
    ESCAPE = "escape_rate", "Escape rate above target (audits of partial automation)"


class AlarmStatus(models.TextChoices):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"


# An alarm is active until cleared: acknowledged ones still count on the dashboard and in metrics.
ACTIVE_ALARM_STATUSES = (AlarmStatus.OPEN, AlarmStatus.ACKNOWLEDGED)


class Alarm(models.Model):
    """A drift alarm at a station: raised by a check, acknowledged and cleared by a supervisor.

    While an alarm of a kind is open or acknowledged, later checks that see the same shift count
    on it (`times_seen`) instead of raising another."""

    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="alarms")
    kind = models.CharField(max_length=20, choices=AlarmKind.choices)
    status = models.CharField(max_length=12, choices=AlarmStatus.choices, default=AlarmStatus.OPEN)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, null=True, related_name="+")
    drift_check = models.ForeignKey(DriftCheck, on_delete=models.PROTECT, null=True, related_name="alarms")
    summary = models.CharField(max_length=300)
    detail = models.JSONField(default=dict, blank=True)
    # What the system did about it: ["automation level full -> partial", "training job 7 queued"].
    actions = models.JSONField(default=list, blank=True)
    raised_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField()
    times_seen = models.PositiveIntegerField(default=1)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    cleared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    cleared_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True, help_text="The supervisor's note on clearing.")
    # Who was told, once per alarm: {"email": ISO time sent, "chat": ISO time sent}.
    notified = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-raised_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["station", "kind"],
                condition=~models.Q(status="cleared"),
                name="one_active_alarm_per_station_and_kind",
            ),
        ]
        indexes = [models.Index(fields=["station", "status"], name="alarm_by_station_status")]

    def __str__(self) -> str:
        return f"alarm {self.pk} at {self.station}: {self.get_kind_display()} ({self.status})"
