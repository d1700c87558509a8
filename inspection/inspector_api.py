"""What the station page calls: claim the next unit, give one back, read the queue's figures.

Signed-in people only (session + CSRF): a device key is refused here. Blind units (human-only and
shadow levels, audits) come without anything of the model's: no score, no regions.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inspection.authentication import StationDevice
from inspection.claims.views import ClaimNextView, ClaimSerializer, ClaimView, ReleaseView
from inspection.models import Station, Unit
from inspection.selectors import unit_current_decision, unit_deciding_prediction, unit_why_shown
from inspection.services.queue import (
    inspector_shift_stats,
    queue_stats,
    unit_claim,
    unit_claim_next,
    unit_claim_release,
)


class IsInspector(BasePermission):
    message = "the station page is for inspectors (a person with the inspector role)"

    def has_permission(self, request, view) -> bool:
        if isinstance(request.user, StationDevice):
            return False
        return bool(request.user and request.user.has_perm("inspection.decide_unit"))


def inspector_unit(unit: Unit) -> dict:
    """A claimed unit as the station page shows it, with why it is shown (`why`)."""
    decision = unit_current_decision(unit=unit)
    # Nothing of the model's reaches a blind unit's page, its "why" included.
    prediction = None if unit.blind else unit_deciding_prediction(unit=unit)
    body = {
        "id": unit.id,
        "serial": unit.serial,
        "received_at": unit.received_at.isoformat(),
        "image_url": reverse("unit-image", kwargs={"pk": unit.id}),
        "width": unit.image_width,
        "height": unit.image_height,
        "status": unit.status,
        "automation_level": unit.automation_level,
        "queue_reason": unit.queue_reason,
        "frame_check": unit.routing.get("frame_check", {}).get("message"),
        "why": unit_why_shown(unit=unit, prediction=prediction),
        "blind": unit.blind,
        "decision": decision.verdict if decision else None,
        "claim_expires_at": unit.claim_expires_at.isoformat() if unit.claim_expires_at else None,
    }
    if not unit.blind and prediction is not None:
        body["model"] = {
            "score": round(prediction.defect_probability, 4),
            "label": prediction.label,
            "verdict": prediction.verdict,
            "confidence": round(prediction.confidence, 4),
            "regions": prediction.regions,
            "version": f"{prediction.model_version.name}:{prediction.model_version.version}",
        }
    return body


@extend_schema_view(
    post=extend_schema(
        request=ClaimSerializer,
        responses={200: inline_serializer("ClaimedUnit", {"id": serializers.IntegerField()}), 204: None},
        summary="Claim the next pending unit of a station (station page)",
    )
)
class ClaimNext(ClaimNextView):
    permission_classes = [IsAuthenticated, IsInspector]

    def claim_next(self, *, station: Station, user, exclude: list[int]) -> Unit | None:
        return unit_claim_next(station=station, user=user, exclude=exclude)

    def claimed_body(self, claimed: Unit) -> dict:
        return inspector_unit(claimed)


@extend_schema_view(
    post=extend_schema(
        request=None,
        responses={200: inline_serializer("ClaimedGivenUnit", {"id": serializers.IntegerField()}), 409: None},
        summary="Claim a given pending unit (going back to one skipped); 409 says why it cannot be",
    )
)
class ClaimUnit(ClaimView):
    permission_classes = [IsAuthenticated, IsInspector]
    model = Unit

    def claim(self, row: Unit, *, user) -> Unit:
        return unit_claim(unit=row, user=user)

    def claimed_body(self, claimed: Unit) -> dict:
        return inspector_unit(claimed)


@extend_schema_view(
    post=extend_schema(
        request=None, responses={204: None}, summary="Give a claimed unit back to the queue (skip)"
    )
)
class ReleaseClaim(ReleaseView):
    permission_classes = [IsAuthenticated, IsInspector]
    model = Unit
    refusal = "unit {pk} is not pending and claimed by you"

    def release(self, row: Unit, *, user) -> bool:
        return unit_claim_release(unit=row, user=user)


class QueueFigures(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={200: inline_serializer("QueueFigures", {"pending": serializers.IntegerField()})},
        summary="Queue length, oldest pending age, and the caller's own count and pace this shift",
    )
    def get(self, request: Request, slug: str) -> Response:
        station = get_object_or_404(Station, slug=slug)
        if isinstance(request.user, StationDevice):
            if request.user.station.pk != station.pk:
                raise PermissionDenied("this key belongs to another station")
            mine = None
        else:
            if not request.user.has_perm("inspection.view_station"):
                raise PermissionDenied("viewing a station needs a role")
            shift = inspector_shift_stats(user=request.user, station=station)
            mine = {"decisions": shift.decisions, "per_hour": shift.per_hour}
        queue = queue_stats(station=station)
        return Response(
            {
                "station": station.slug,
                "automation_level": station.automation_level,
                "pending": queue.pending,
                "unclaimed": queue.unclaimed,
                "oldest_pending_seconds": queue.oldest_pending_seconds,
                "mine": mine,
            }
        )
