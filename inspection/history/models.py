"""What people say about a unit: comments, shown in its timeline (append-only)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

COMMENT_MAX_LENGTH = 2000


class UnitComment(models.Model):
    unit = models.ForeignKey("inspection.Unit", on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField(max_length=COMMENT_MAX_LENGTH)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["unit", "created_at"], name="comment_by_unit")]

    def __str__(self) -> str:
        return f"{self.unit_id}: {self.author} at {self.created_at:%Y-%m-%d %H:%M}"
