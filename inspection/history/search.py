"""Searching units: the filters of the units page, its CSV export and the units API, and the
cursor pages over the result, newest first.

Every filter is a column of `Unit` (the current decision is copied onto the unit for this, see
`inspection.models`), so a search is one table read in the order of an index: a page costs the
rows it shows plus the rows the filter skips, however many units there are (`bench/units_page.py`
measures it at a million).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django import forms
from django.db.models import F, Q, QuerySet, Value
from django.utils import timezone

from inspection.enums import DecisionReason, DecisionSource, UnitStatus, Verdict
from inspection.models import Station, Unit
from inspection.supervision.dashboard.periods import PERIODS, period_get, window_at
from inspection.supervision.models import Alarm
from models_registry.models import ModelVersion

PAGE_SIZE = 48
PENDING = "pending"
DATETIME_INPUTS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]


class CursorInvalid(ValueError):
    """A cursor this server did not make (or from a different search)."""


class UnitFilter(forms.Form):
    """The filters, from a query string. Invalid values are errors that name the field, never
    silently ignored (an export of "everything" instead of what was asked for is a wrong answer)."""

    station = forms.ModelChoiceField(
        queryset=Station.objects.all(), to_field_name="slug", required=False, empty_label="all stations"
    )
    serial = forms.CharField(max_length=200, required=False, help_text="the serial, or its beginning")
    within = forms.ChoiceField(
        choices=[("", "any time"), *((name, f"the dashboard's last {name}") for name in PERIODS)],
        required=False,
        label="Received within",
        help_text="the dashboard's period, so that its figures link to their units",
    )
    received_from = forms.DateTimeField(required=False, input_formats=DATETIME_INPUTS)
    received_to = forms.DateTimeField(required=False, input_formats=DATETIME_INPUTS)
    verdict = forms.ChoiceField(
        choices=[("", "any"), (PENDING, "pending (no decision yet)"), *Verdict.choices], required=False
    )
    decided_by = forms.ChoiceField(choices=[("", "anyone"), *DecisionSource.choices], required=False)
    reason = forms.ChoiceField(choices=[("", "any"), *DecisionReason.choices], required=False)
    model = forms.ModelChoiceField(
        queryset=ModelVersion.objects.order_by("name", "-version"),
        required=False,
        empty_label="any model",
        help_text="the model version routed to decide it",
    )
    disagreement = forms.ChoiceField(
        choices=[("", "either"), ("yes", "a model and a person disagreed"), ("no", "no disagreement")],
        required=False,
    )
    # Reached from an alarm's link (dashboard, timeline), shown as a removable chip: a station
    # may have had thousands of alarms, too many for a list to pick from.
    alarm = forms.ModelChoiceField(
        queryset=Alarm.objects.select_related("station", "drift_check"),
        required=False,
        widget=forms.HiddenInput,
        help_text="the units of the alarm's window: from the first unit its check read until it was cleared",
    )

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("received_from"), data.get("received_to")
        if start and end and start > end:
            self.add_error("received_to", "must not be before received from")
        alarm, station = data.get("alarm"), data.get("station")
        if alarm is not None and station is not None and alarm.station_id != station.id:
            self.add_error(
                "alarm", f"alarm {alarm.pk} is at station {alarm.station.slug}, not {station.slug}"
            )
        return data

    def error_summary(self) -> dict[str, list[str]]:
        return {field: [str(message) for message in messages] for field, messages in self.errors.items()}

    def applied(self) -> list[tuple[str, str]]:
        """The filters in force, as (field, value) pairs for links that keep them."""
        return [(name, self.data[name]) for name in self.fields if self.data.get(name)]


def units_search(*, filters: dict, station: Station | None = None) -> QuerySet[Unit]:
    """The units matching `filters` (a valid `UnitFilter`'s cleaned data), newest first. With
    `station`, only that station's (a device key sees nothing else)."""
    units = Unit.objects.all()
    for scope in (station, filters.get("station")):
        if scope is not None:
            units = units.filter(station=scope)
    if serial := filters.get("serial"):
        units = units.filter(serial__startswith=serial.strip())
    if within := filters.get("within"):
        units = units.filter(received_at__gte=window_at(period=period_get(within), now=timezone.now()).start)
    if start := filters.get("received_from"):
        units = units.filter(received_at__gte=start)
    if end := filters.get("received_to"):
        units = units.filter(received_at__lte=end)
    verdict = filters.get("verdict")
    if verdict == PENDING:
        units = units.filter(status=UnitStatus.PENDING)
    elif verdict:
        units = units.filter(decision_verdict=verdict)
    if source := filters.get("decided_by"):
        units = units.filter(decision_source=source)
    if reason := filters.get("reason"):
        units = units.filter(decision_reason=reason)
    if model := filters.get("model"):
        units = units.filter(deciding_model=model)
    if disagreement := filters.get("disagreement"):
        units = units.filter(disagreement=disagreement == "yes")
    if alarm := filters.get("alarm"):
        start, end = alarm_window(alarm)
        units = units.filter(station_id=alarm.station_id, received_at__gte=start)
        if end is not None:
            units = units.filter(received_at__lte=end)
    if filters.get("serial"):
        # A serial's units sit together in arrival order, which the planner cannot know: ordered
        # by arrival it would walk the arrival index hoping to meet them soon. Ordered by an
        # expression, it reads the few matches from the serial index (arrival included) and sorts.
        return units.order_by((F("received_at") + Value(timedelta(0))).desc(), F("id").desc())
    return units.order_by("-received_at", "-id")


def alarm_window(alarm: Alarm) -> tuple[datetime, datetime | None]:
    """From the first unit the alarm's check read (or its raising) to its clearing (None: still
    active)."""
    start = alarm.raised_at
    if alarm.drift_check is not None:
        first = Unit.objects.filter(pk=alarm.drift_check.first_unit_id).values_list("received_at", flat=True)
        start = min([start, *first])
    return start, alarm.cleared_at


@dataclass(frozen=True)
class Page:
    units: Sequence[Unit]
    older: str | None  # the cursor of the next (older) page, None on the last
    newer: str | None  # the cursor of the previous (newer) page, None on the first


def units_page(units: QuerySet[Unit], *, cursor: str | None, size: int = PAGE_SIZE) -> Page:
    """A page of `units` (ordered newest first), by keyset on (received_at, id): each page reads
    only its own rows through the index, and a unit arriving meanwhile never shifts a page."""
    if not cursor:
        rows = list(units[: size + 1])
        return Page(rows[:size], older=_cursor_after(rows, size, "older"), newer=None)
    direction, received_at, unit_id = _cursor_read(cursor)
    if direction == "older":
        # The redundant `received_at <= t` is what lets the index range start at the cursor.
        rows = list(
            units.filter(received_at__lte=received_at).filter(
                Q(received_at__lt=received_at) | Q(id__lt=unit_id)
            )[: size + 1]
        )
        newer = _cursor(rows[0], "newer") if rows else None
        return Page(rows[:size], older=_cursor_after(rows, size, "older"), newer=newer)
    rows = list(
        units.filter(received_at__gte=received_at)
        .filter(Q(received_at__gt=received_at) | Q(id__gt=unit_id))
        .reverse()[: size + 1]
    )
    more_newer = len(rows) > size
    rows = rows[:size][::-1]
    return Page(
        rows,
        older=_cursor(rows[-1], "older") if rows else None,
        newer=_cursor(rows[0], "newer") if rows and more_newer else None,
    )


def _cursor_after(rows: list[Unit], size: int, direction: str) -> str | None:
    return _cursor(rows[size - 1], direction) if len(rows) > size else None


def _cursor(unit: Unit, direction: str) -> str:
    raw = json.dumps([direction, unit.received_at.isoformat(), unit.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _cursor_read(cursor: str) -> tuple[str, datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        direction, received_at, unit_id = json.loads(raw)
        when = datetime.fromisoformat(received_at)
    except (binascii.Error, ValueError, TypeError) as error:
        raise CursorInvalid("cursor is not one of this server's page links") from error
    if direction not in ("older", "newer") or not isinstance(unit_id, int) or timezone.is_naive(when):
        raise CursorInvalid("cursor is not one of this server's page links")
    return direction, when, unit_id
