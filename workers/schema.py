"""Training in the OpenAPI schema: the job as the station's admin page and its live events show
it (`selectors.training_job_summary`), and the two events a training publishes."""

from __future__ import annotations

from rest_framework import serializers

from inspection.api import ConstantField
from workers.models import TrainingStatus
from workers.retraining import PROGRESS_EVENT, STATUS_EVENT


class TrainingComparisonRowSerializer(serializers.Serializer):
    metric = serializers.CharField(help_text="the gate's coverage first, then AUROC, accuracy, ECE, box mAP")
    candidate = serializers.FloatField(allow_null=True)
    champion = serializers.FloatField(allow_null=True, help_text="null without a champion")


class TrainingJobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=TrainingStatus.values)
    status_label = serializers.CharField()
    trigger = serializers.CharField(help_text="what started it, in words")
    requested_by = serializers.CharField(allow_null=True, help_text="the person who asked, if one did")
    snapshot = serializers.CharField(help_text="the data set snapshot it trains on")
    attempts = serializers.IntegerField()
    epoch = serializers.IntegerField()
    epochs = serializers.IntegerField()
    step = serializers.IntegerField()
    steps = serializers.IntegerField()
    loss = serializers.FloatField(allow_null=True)
    validation_loss = serializers.FloatField(allow_null=True)
    eta_seconds = serializers.FloatField(allow_null=True)
    candidate = serializers.CharField(allow_null=True, help_text="the trained version, name:version")
    champion = serializers.CharField(allow_null=True, help_text="the champion it was gated against")
    passed = serializers.BooleanField(allow_null=True, help_text="the gate's verdict, once gated")
    reasons = serializers.ListField(child=serializers.CharField(), help_text="the gate's reasons")
    test_units = serializers.IntegerField(allow_null=True, help_text="units of the frozen test split")
    comparison = TrainingComparisonRowSerializer(many=True, help_text="side by side, once evaluated")
    error = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class LiveTrainingProgress(serializers.Serializer):
    """A step or an epoch of the station's training (at most every few seconds)."""

    type = ConstantField(PROGRESS_EVENT)
    job = TrainingJobSerializer()


class LiveTrainingStatus(serializers.Serializer):
    """A training job queued, started, gated or failed."""

    type = ConstantField(STATUS_EVENT)
    job = TrainingJobSerializer()


# Published to the station's group (`inspection.events.station_event_publish`): type -> payload.
LIVE_EVENTS = {PROGRESS_EVENT: LiveTrainingProgress, STATUS_EVENT: LiveTrainingStatus}
