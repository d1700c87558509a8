"""The threshold tool on a station's admin page: a JSON endpoint that measures settings the
supervisor is still editing (target escape rate, level, band, audit share) on the champion's and
challenger's validation units. `StationAdmin.get_urls` routes it, behind the admin's login.

Whoever may change the station's settings may use it (supervisors): the tool is for setting them.
"""

from __future__ import annotations

import math

from django.core.validators import MaxValueValidator, MinValueValidator
from django.http import HttpRequest, JsonResponse, QueryDict
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from inspection.enums import AutomationLevel
from inspection.models import Station
from inspection.policy import StationPolicy
from inspection.selectors import station_threshold_previews

THRESHOLD_TOOL_PERMISSION = "inspection.change_station"
NUMBER_PARAMETERS = ("target_escape_rate", "uncertainty_band", "audit_share")


def _limits(name: str) -> tuple[float, float]:
    """The field's bounds, read from the model so the tool accepts exactly what saving accepts."""
    validators = Station._meta.get_field(name).validators
    low = next(v.limit_value for v in validators if isinstance(v, MinValueValidator))
    high = next(v.limit_value for v in validators if isinstance(v, MaxValueValidator))
    return low, high


def threshold_settings_parse(*, query: QueryDict, station: Station) -> tuple[StationPolicy | None, dict]:
    """The policy the query asks about, or None and `{parameter: problem}`. A parameter left out
    keeps the station's saved value."""
    errors: dict[str, str] = {}
    values: dict[str, float] = {}
    for name in NUMBER_PARAMETERS:
        raw = query.get(name)
        if raw is None:
            values[name] = getattr(station, name)
            continue
        low, high = _limits(name)
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and low <= value <= high):
            errors[name] = f"must be a number from {low:g} to {high:g}, not {raw!r}"
        values[name] = value
    level = query.get("automation_level", station.automation_level)
    if level not in AutomationLevel.values:
        errors["automation_level"] = f"must be one of {', '.join(AutomationLevel.values)}, not {level!r}"
    if errors:
        return None, errors
    return StationPolicy(level=level, **values), {}


@never_cache
@require_GET
def station_thresholds(request: HttpRequest, station_id: int) -> JsonResponse:
    """`GET …/station/<id>/thresholds/?target_escape_rate=&automation_level=&uncertainty_band=
    &audit_share=`: per model (champion, then challenger if any), the error bound and threshold
    used, the expected automation rate, the observed error on validation, and the risk-coverage
    curve with the operating point."""
    if not request.user.has_perm(THRESHOLD_TOOL_PERMISSION):
        return JsonResponse(
            {"error": "only those who may change station settings use the threshold tool"}, status=403
        )
    station = Station.objects.select_related("champion", "challenger").filter(pk=station_id).first()
    if station is None:
        return JsonResponse({"error": f"no station {station_id}"}, status=404)
    policy, errors = threshold_settings_parse(query=request.GET, station=station)
    if policy is None:
        return JsonResponse({"errors": errors}, status=400)
    return JsonResponse(
        {
            "station": station.slug,
            "settings": policy.as_dict(),
            "models": station_threshold_previews(station=station, policy=policy),
        }
    )
