"""A station's webhook deliveries: one final decision pushed to its URL, with its attempts."""

from __future__ import annotations

from django.db import models

from inspection.models import DecisionEvent, Station


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookDelivery(models.Model):
    """One final decision pushed to a station's webhook, with its attempts."""

    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="webhook_deliveries")
    decision = models.OneToOneField(DecisionEvent, on_delete=models.CASCADE, related_name="webhook_delivery")
    url = models.URLField(max_length=500)
    body = models.TextField(help_text="The exact bytes signed and sent (JSON).")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(
        blank=True,
        help_text="What went wrong on the last attempt, in Loupe's words (the status code, a redirect "
        "not followed, a refused address, a network error): never the receiver's answer.",
    )
    last_duration_ms = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="How long the last attempt took, from the address check to the answer.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.station} -> {self.url} ({self.status})"
