"""Supervision in the OpenAPI schema: the alarm as the API and the live events show it
(`services.alarm_representation`), and the events the alarm services publish."""

from __future__ import annotations

from rest_framework import serializers

from inspection.api import ConstantField
from inspection.enums import AutomationLevel
from inspection.supervision.models import AlarmKind, AlarmStatus
from inspection.supervision.services import ALARM_CHANGED, ALARM_RAISED, STATION_CHANGED


class AlarmSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    station = serializers.CharField(help_text="the station's slug")
    kind = serializers.ChoiceField(choices=AlarmKind.values)
    kind_display = serializers.CharField()
    status = serializers.ChoiceField(choices=AlarmStatus.values)
    summary = serializers.CharField()
    actions = serializers.ListField(
        child=serializers.CharField(), help_text="what Loupe did about it (the level's step-down)"
    )
    model_version = serializers.CharField(allow_null=True, help_text="name:version, for model alarms")
    raised_at = serializers.DateTimeField()
    last_seen_at = serializers.DateTimeField(help_text="the last check that found it again")
    times_seen = serializers.IntegerField()
    acknowledged_by = serializers.CharField(allow_null=True)
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    cleared_by = serializers.CharField(allow_null=True)
    cleared_at = serializers.DateTimeField(allow_null=True)
    note = serializers.CharField(allow_blank=True, help_text="the supervisor's note on clearing")


class LiveAlarmRaised(serializers.Serializer):
    """A new alarm at the station (a drift check or the audit agreement found a shift)."""

    type = ConstantField(ALARM_RAISED)
    alarm = AlarmSerializer()


class LiveAlarmChanged(serializers.Serializer):
    """An active alarm seen again, acknowledged or cleared."""

    type = ConstantField(ALARM_CHANGED)
    alarm = AlarmSerializer()


class StationChangesSerializer(serializers.Serializer):
    automation_level = serializers.ChoiceField(choices=AutomationLevel.values, help_text="the new level")


class LiveStationChanged(serializers.Serializer):
    """A new alarm stepped the station's automation level down (its drift settings allow it)."""

    type = ConstantField(STATION_CHANGED)
    station = serializers.CharField(help_text="the station's slug")
    changes = StationChangesSerializer()
    alarm = serializers.IntegerField(help_text="the id of the alarm that caused it")


# Published to the station's group (`inspection.events.station_event_publish`): type -> payload.
LIVE_EVENTS = {
    ALARM_RAISED: LiveAlarmRaised,
    ALARM_CHANGED: LiveAlarmChanged,
    STATION_CHANGED: LiveStationChanged,
}
