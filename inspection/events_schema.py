"""The live events in the OpenAPI schema: the payload of each event inspection publishes to a
station's group (`events.station_event_publish`), and the dashboard's `station.activity` notice.

Every app declares its events as `live_events` on its AppConfig (type -> serializer);
`config/api_schema.py` gathers them into the document's WebSocket section.
"""

from __future__ import annotations

from rest_framework import serializers

from inspection.api import ConstantField, UnitSerializer
from inspection.events import STATION_ACTIVITY, UNIT_DECIDED, UNIT_RECEIVED
from inspection.supervision.schema import LIVE_EVENTS as SUPERVISION_EVENTS
from inspection.supervision.schema import AlarmSerializer


class LiveUnitReceived(serializers.Serializer):
    """A unit was posted and stored; at full or partial automation `unit.decided` may follow at
    once, else a person decides it later."""

    type = ConstantField(UNIT_RECEIVED)
    unit = UnitSerializer()


class LiveUnitDecided(serializers.Serializer):
    """A unit's decision: the model's at arrival, or a person's (an override comes as another)."""

    type = ConstantField(UNIT_DECIDED)
    unit = UnitSerializer()


class LiveStationActivity(serializers.Serializer):
    """Something happened at a station: the dashboard refetches its figures, and shows the
    alarms at once. One notice per batch of the station's events."""

    type = ConstantField(STATION_ACTIVITY)
    station = serializers.CharField(help_text="the station's slug")
    kinds = serializers.ListField(
        child=serializers.CharField(), help_text="the batch's event types, sorted, each once"
    )
    alarms = AlarmSerializer(many=True, help_text="the batch's alarms in full (alarm events)")


# Published to the station's group: type -> payload (this app's share; see the docstring).
LIVE_EVENTS = {UNIT_RECEIVED: LiveUnitReceived, UNIT_DECIDED: LiveUnitDecided, **SUPERVISION_EVENTS}
# What `/ws/dashboard/` sends.
DASHBOARD_EVENTS = {STATION_ACTIVITY: LiveStationActivity}
