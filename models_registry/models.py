"""Loupe's mirror of the MLflow Model Registry."""

from __future__ import annotations

from django.db import models


class ModelVersion(models.Model):
    """A registered model version: MLflow holds the artifacts, this row what Loupe needs to serve it."""

    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField()
    mlflow_run_id = models.CharField(max_length=64)
    source_uri = models.CharField(max_length=500, help_text="MLflow URI of the model bundle")
    dataset_name = models.CharField(max_length=100, blank=True)
    architecture = models.CharField(max_length=100)
    # How the model looks at a frame (`ml.geometry.Geometry.as_dict()`), as its bundle says.
    geometry = models.JSONField(default=dict, blank=True)
    classes = models.JSONField(default=list)
    # Validation metrics and the risk-controlled thresholds per error bound, as logged to MLflow.
    metrics = models.JSONField(default=dict)
    risk_control = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="unique_model_version")]
        ordering = ["name", "-version"]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"
