"""The station admin page's own views: the threshold tool, a JSON endpoint that measures settings
the supervisor is still editing (target escape rate, level, band, audit share) on the champion's
and challenger's validation units; the rollout buttons (challenger in shadow, canary share,
promote after seeing the figures, roll back); and the rotation of the webhook secret.
`StationAdmin.get_urls` routes them, behind the admin's login.

Whoever may change the station's settings may use them (supervisors).
"""

from __future__ import annotations

import math

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from inspection.enums import AutomationLevel
from inspection.models import Station
from inspection.policy import StationPolicy
from inspection.selectors import (
    model_version_station_figures,
    station_escape_risk,
    station_threshold_previews,
)
from inspection.services.rollout import (
    challenger_promote,
    challenger_set,
    challenger_to_canary,
    champion_history,
    champion_rollback,
)
from inspection.services.stations import station_webhook_secret_rotate
from models_registry.models import ModelVersion

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
    curve with the operating point; `escape_risk`, what saving these settings would ask the
    supervisor to confirm (null when nothing)."""
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
    risk = station_escape_risk(station=station, policy=policy)
    return JsonResponse(
        {
            "station": station.slug,
            "settings": policy.as_dict(),
            "models": station_threshold_previews(station=station, policy=policy),
            "escape_risk": risk.message if risk is not None else None,
        }
    )


ROLLOUT_STEPS = ("challenger", "canary", "promote", "rollback")


@never_cache
@require_POST
def station_rollout(request: HttpRequest, station_id: int) -> HttpResponse:
    """`POST …/station/<id>/rollout/` with `step`: `challenger` (`model_version`: an id) puts a
    version in shadow, `canary` (`canary_percent`) lets it decide that share, `promote` shows the
    challenger's measured figures and promotes on `confirmed`, `rollback` steps back one champion.
    Each goes through the rollout service (audited, aliases moved); a refusal is an error message
    on the station's page, naming the problem."""
    if not request.user.has_perm(THRESHOLD_TOOL_PERMISSION):
        raise PermissionDenied("only those who may change station settings roll models out")
    station = get_object_or_404(Station.objects.select_related("champion", "challenger"), pk=station_id)
    back = reverse("admin:inspection_station_change", args=[station.pk]) + "#rollout"
    step = request.POST.get("step", "")
    try:
        if step == "challenger":
            model_version = _model_version(request.POST.get("model_version", ""))
            challenger_set(station=station, model_version=model_version, user=request.user)
            done = f"{model_version.name}:{model_version.version} is the challenger, in shadow"
        elif step == "canary":
            share = _canary_share(request.POST.get("canary_percent", ""))
            challenger_to_canary(station=station, share=share, user=request.user)
            done = f"the challenger decides {share:.0%} of units"
        elif step == "promote":
            if station.challenger is None:
                raise ValidationError(f"station {station.slug} has no challenger to promote")
            if request.POST.get("confirmed") != "yes":
                return render(
                    request,
                    "admin/inspection/station/rollout_promote.html",
                    _promote_context(request, station),
                )
            promoted = station.challenger
            challenger_promote(station=station, user=request.user)
            done = f"{promoted.name}:{promoted.version} is the champion"
        elif step == "rollback":
            champion_rollback(station=station, user=request.user)
            done = f"rolled back to {station.champion.name}:{station.champion.version}"
        else:
            raise ValidationError(f"unknown rollout step {step!r} (steps: {', '.join(ROLLOUT_STEPS)})")
    except ValidationError as error:
        messages.error(request, f"{station.slug}: {'; '.join(error.messages)}")
    else:
        messages.success(request, f"{station.slug}: {done}")
    return redirect(back)


def _model_version(raw: str) -> ModelVersion:
    if not raw.strip():
        raise ValidationError("choose the model version to put in shadow")
    version = ModelVersion.objects.filter(pk=int(raw)).first() if raw.strip().isdigit() else None
    if version is None:
        raise ValidationError(f"no model version {raw!r}")
    return version


def _canary_share(raw: str) -> float:
    try:
        percent = float(raw)
    except ValueError:
        percent = math.nan
    if not (math.isfinite(percent) and 0 < percent <= 100):
        raise ValidationError(f"the canary share is a percentage above 0 and up to 100, not {raw!r}")
    return percent / 100


def station_rollout_context(*, station: Station) -> dict:
    """The Rollout panel of the station's page: the versions that may go in shadow, the measured
    figures of the challenger and champion, and where a rollback would go."""
    history = champion_history(station=station)
    return {
        "versions": ModelVersion.objects.exclude(
            pk__in=[pk for pk in (station.champion_id, station.challenger_id) if pk is not None]
        ).order_by("name", "-version"),
        "figures": _figures(station),
        "rollback_to": history[-1] if history else None,
        "canary_percent": round(station.canary_share * 100, 2),
    }


def _figures(station: Station) -> list[dict]:
    figures = []
    for role, version in (("challenger", station.challenger), ("champion", station.champion)):
        if version is None:
            continue
        measured = model_version_station_figures(station=station, model_version=version)
        agreement = measured["agreement"]
        figures.append(
            {**measured, "role": role, "agreement_percent": None if agreement is None else 100 * agreement}
        )
    return figures


def _promote_context(request: HttpRequest, station: Station) -> dict:
    return {
        **admin.site.each_context(request),
        "title": f"Promote the challenger of {station.slug}?",
        "station": station,
        "opts": Station._meta,
        "figures": _figures(station),
    }


@never_cache
def station_webhook_secret(request: HttpRequest, station_id: int) -> HttpResponse:
    """`GET …/station/<id>/webhook-secret/` asks to confirm; `POST` gives the station a new random
    webhook secret and shows it on this page only, to the supervisor who rotated it: it is never
    shown again (not cached either), so the receiver must be given it now."""
    if not request.user.has_perm(THRESHOLD_TOOL_PERMISSION):
        raise PermissionDenied("only those who may change station settings rotate its webhook secret")
    station = get_object_or_404(Station, pk=station_id)
    secret = None
    if request.method == "POST":
        secret = station_webhook_secret_rotate(station=station, user=request.user)
    context = {
        **admin.site.each_context(request),
        "title": f"Webhook secret of {station.slug}",
        "station": station,
        "opts": Station._meta,
        "secret": secret,
    }
    return render(request, "admin/inspection/station/webhook_secret.html", context)
