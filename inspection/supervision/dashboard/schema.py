"""The dashboard's JSON in the OpenAPI schema: exactly what `report.dashboard_overview` and
`report.dashboard_station` return (tests/inspection/supervision/test_dashboard_schema.py checks
real answers against it)."""

from __future__ import annotations

from rest_framework import serializers

from inspection.enums import AutomationLevel, RolloutMode
from inspection.supervision.dashboard.periods import PERIODS
from inspection.supervision.schema import AlarmSerializer
from inspection.supervision.selectors import LiveEscapeState


def _nullable_floats(help_text: str) -> serializers.ListField:
    return serializers.ListField(child=serializers.FloatField(allow_null=True), help_text=help_text)


def _floats(help_text: str) -> serializers.ListField:
    return serializers.ListField(child=serializers.FloatField(), help_text=help_text)


def _counts(help_text: str) -> serializers.ListField:
    return serializers.ListField(child=serializers.IntegerField(), help_text=help_text)


class ErrorMessageSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="what is wrong, in words")


class PeriodErrorSerializer(serializers.Serializer):
    period = serializers.ListField(child=serializers.CharField(), help_text="names the accepted periods")


class NoteErrorSerializer(serializers.Serializer):
    note = serializers.ListField(child=serializers.CharField(), help_text="what is wrong with the note")


class ProportionSerializer(serializers.Serializer):
    """A share of counted units with its exact (Clopper-Pearson) 95 % interval."""

    count = serializers.IntegerField()
    total = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True, help_text="count / total; null when total is 0")
    low = serializers.FloatField(allow_null=True, help_text="the interval's lower end")
    high = serializers.FloatField(allow_null=True, help_text="the interval's upper end")


class EscapeSerializer(serializers.Serializer):
    audits = serializers.IntegerField(help_text="audit units a person has judged")
    wrong = ProportionSerializer(help_text="audits where the model's verdict was wrong")
    missed = ProportionSerializer(help_text="audits the model passed and the person failed")


class LiveEscapeSerializer(serializers.Serializer):
    """Partial automation's live escape rate: its blind audits of the champion since the threshold
    it decides at came into force (`inspection.supervision.selectors.LiveEscapeRate`)."""

    model_version = serializers.CharField()
    target = serializers.FloatField(help_text="the station's target escape rate")
    since = serializers.DateTimeField(
        allow_null=True, help_text="the window's start; null: the champion's first audit"
    )
    since_reason = serializers.CharField(allow_blank=True, help_text="what started the window")
    confidence = serializers.FloatField(help_text="the interval's confidence level")
    audits = serializers.IntegerField(help_text="audits judged by a person in the window")
    wrong = ProportionSerializer(help_text="audits where the model's verdict was wrong")
    audits_needed = serializers.IntegerField(
        help_text="the fewest audits, all right, that show the target met"
    )
    state = serializers.ChoiceField(choices=[state.value for state in LiveEscapeState])
    text = serializers.CharField(help_text="the estimate in words")


class DecisionsPerHourSerializer(serializers.Serializer):
    model = serializers.FloatField()
    human = serializers.FloatField()
    total = serializers.FloatField()


class DecisionsSerializer(serializers.Serializer):
    by_model = serializers.IntegerField()
    by_human = serializers.IntegerField()
    per_hour = DecisionsPerHourSerializer()


class QueueSerializer(serializers.Serializer):
    pending = serializers.IntegerField(help_text="units waiting for a person now")
    oldest_pending_seconds = serializers.FloatField(allow_null=True, help_text="null when none waits")


class LatencySummarySerializer(serializers.Serializer):
    """The line's `POST /api/v1/units/` times, from histograms (within 12 % of the exact value)."""

    count = serializers.IntegerField()
    p50_ms = serializers.FloatField(allow_null=True, help_text="null without requests")
    p99_ms = serializers.FloatField(allow_null=True)


class FiguresSerializer(serializers.Serializer):
    """Rates in [0, 1] over the period's buckets; see the dashboard's definitions."""

    units_received = serializers.IntegerField()
    automation = ProportionSerializer(help_text="units a model decided alone")
    deferral = ProportionSerializer(help_text="units the policy deferred to a person")
    agreement = ProportionSerializer(help_text="blind units where the person agreed with the model")
    escape = EscapeSerializer()
    decisions = DecisionsSerializer()
    queue = QueueSerializer()
    latency = LatencySummarySerializer()


class DashboardStationSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    line = serializers.CharField(allow_blank=True)
    automation_level = serializers.ChoiceField(choices=AutomationLevel.values)
    automation_level_display = serializers.CharField()
    target_escape_rate = serializers.FloatField()
    audit_share = serializers.FloatField()
    dashboard_url = serializers.CharField(help_text="the station's dashboard page")


class ModelInPlaySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    model_version = serializers.CharField(help_text="name:version")
    role = serializers.ChoiceField(
        choices=["champion", "challenger", "earlier"],
        help_text="earlier: a version no longer in a role that still predicted units of the period",
    )
    rollout = serializers.ChoiceField(choices=RolloutMode.values, allow_null=True, help_text="challengers'")
    canary_share = serializers.FloatField(allow_null=True, help_text="a canary challenger's share")
    predicted = serializers.IntegerField(help_text="units of the period it predicted")
    decided = serializers.IntegerField(help_text="units of the period it decided alone")
    decided_share = serializers.FloatField(allow_null=True, help_text="decided / units received")


class AlarmCountsSerializer(serializers.Serializer):
    open = serializers.IntegerField()
    acknowledged = serializers.IntegerField()


class DashboardStationRowSerializer(DashboardStationSerializer):
    figures = FiguresSerializer()
    models = ModelInPlaySerializer(many=True)
    alarms = AlarmCountsSerializer(help_text="the station's active alarms")
    live_escape = LiveEscapeSerializer(allow_null=True, help_text="null for a station without a champion")


class DriftPointsSerializer(serializers.Serializer):
    """The period's drift checks, one position per check in every list, oldest first."""

    t = _floats("epoch seconds of each check")
    station = serializers.ListField(child=serializers.CharField(), help_text="the checked station's slug")
    min_adjusted_p = _nullable_floats("the smallest Holm-adjusted p-value of the check's tests")
    significance = _floats("the level the check judged at")
    shifted = serializers.ListField(child=serializers.BooleanField())
    shifted_tests = serializers.ListField(
        child=serializers.ListField(child=serializers.CharField()), help_text="the tests that found a shift"
    )


class SeriesSerializer(serializers.Serializer):
    """The charts: one value per bucket in every list, oldest bucket first (null where a rate or a
    percentile has nothing to count)."""

    t = _counts("epoch seconds at which each bucket starts")
    received = _counts("units received")
    decided_by_model = _counts("decision events by a model")
    decided_by_human = _counts("decision events by people")
    automation_rate = _nullable_floats("units a model decided alone / units received")
    judged = _counts("blind units a person has judged")
    agreement = _nullable_floats("agreement on those units")
    queue_length = _counts("pending units at the end of the bucket")
    latency_count = _counts("line posts timed")
    latency_p50_ms = _nullable_floats("their median, in ms")
    latency_p99_ms = _nullable_floats("their 99th percentile, in ms")
    drift = DriftPointsSerializer()


class _WindowSerializer(serializers.Serializer):
    period = serializers.ChoiceField(choices=list(PERIODS))
    bucket_seconds = serializers.IntegerField()
    start = serializers.DateTimeField(help_text="the first bucket's start")
    now = serializers.DateTimeField()


class DashboardOverviewSerializer(_WindowSerializer):
    overall = FiguresSerializer(help_text="all stations together")
    stations = DashboardStationRowSerializer(many=True)
    alarms = AlarmSerializer(many=True, help_text="active alarms: open, then acknowledged; newest first")
    series = SeriesSerializer(help_text="all stations together")


class DashboardStationReportSerializer(_WindowSerializer):
    station = DashboardStationSerializer()
    figures = FiguresSerializer()
    live_escape = LiveEscapeSerializer(allow_null=True, help_text="null for a station without a champion")
    models = ModelInPlaySerializer(many=True)
    alarms = AlarmSerializer(many=True, help_text="the station's active alarms")
    series = SeriesSerializer()
