"""What the dashboard pages call (session + CSRF; supervisors): the figures as JSON, and the
alarm actions. Views check the period or the alarm, call one selector or service, answer JSON."""

from __future__ import annotations

from django.core.exceptions import ValidationError as ModelValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inspection.authentication import StationDevice
from inspection.models import Station
from inspection.supervision.dashboard.periods import PERIODS, Period, UnknownPeriod, period_get
from inspection.supervision.dashboard.report import dashboard_overview, dashboard_station
from inspection.supervision.dashboard.schema import (
    DashboardOverviewSerializer,
    DashboardStationReportSerializer,
    ErrorMessageSerializer,
    NoteErrorSerializer,
    PeriodErrorSerializer,
)
from inspection.supervision.models import Alarm
from inspection.supervision.schema import AlarmSerializer
from inspection.supervision.services import alarm_acknowledge, alarm_clear, alarm_representation

VIEW_DASHBOARD = "inspection.view_dashboard"
CHANGE_ALARM = "inspection.change_alarm"
PERIOD_PARAMETER = OpenApiParameter(
    "period", OpenApiTypes.STR, enum=list(PERIODS), description="hour (default), day or week"
)


class _PersonWith(BasePermission):
    permission = ""

    def has_permission(self, request, view) -> bool:
        if isinstance(request.user, StationDevice):
            return False
        return bool(request.user and request.user.has_perm(self.permission))


class CanViewDashboard(_PersonWith):
    permission = VIEW_DASHBOARD
    message = "the dashboard is for supervisors (inspection.view_dashboard)"


class CanChangeAlarms(_PersonWith):
    permission = CHANGE_ALARM
    message = "acknowledging and clearing alarms needs inspection.change_alarm (supervisors)"


def _period(request: Request) -> Period:
    try:
        return period_get(request.query_params.get("period", "hour"))
    except UnknownPeriod as error:
        raise ValidationError({"period": [str(error)]}) from error


class DashboardFigures(APIView):
    permission_classes = [IsAuthenticated, CanViewDashboard]

    @extend_schema(
        parameters=[PERIOD_PARAMETER],
        responses={200: DashboardOverviewSerializer, 400: PeriodErrorSerializer, 403: ErrorMessageSerializer},
        summary="Every station's figures, the active alarms and the charts' series (supervisors)",
    )
    def get(self, request: Request) -> Response:
        return Response(dashboard_overview(period=_period(request)))


class StationDashboardFigures(APIView):
    permission_classes = [IsAuthenticated, CanViewDashboard]

    @extend_schema(
        parameters=[PERIOD_PARAMETER],
        responses={
            200: DashboardStationReportSerializer,
            400: PeriodErrorSerializer,
            403: ErrorMessageSerializer,
            404: ErrorMessageSerializer,
        },
        summary="One station's figures, models in play, active alarms and series (supervisors)",
    )
    def get(self, request: Request, slug: str) -> Response:
        period = _period(request)
        station = get_object_or_404(Station, slug=slug)
        return Response(dashboard_station(station=station, period=period))


class AlarmNoteSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


def _alarm_action(action, **arguments) -> Response:
    try:
        alarm = action(**arguments)
    except ModelValidationError as error:
        return Response({"detail": " ".join(error.messages)}, status=status.HTTP_409_CONFLICT)
    return Response(alarm_representation(alarm))


# 409: the alarm is already acknowledged, or already cleared
ALARM_RESPONSES = {
    200: AlarmSerializer,
    403: ErrorMessageSerializer,
    404: ErrorMessageSerializer,
    409: ErrorMessageSerializer,
}


class AlarmAcknowledge(APIView):
    permission_classes = [IsAuthenticated, CanChangeAlarms]

    @extend_schema(request=None, responses=ALARM_RESPONSES, summary="Acknowledge an open alarm")
    def post(self, request: Request, pk: int) -> Response:
        alarm = get_object_or_404(Alarm, pk=pk)
        return _alarm_action(alarm_acknowledge, alarm=alarm, user=request.user)


class AlarmClear(APIView):
    permission_classes = [IsAuthenticated, CanChangeAlarms]

    @extend_schema(
        request=AlarmNoteSerializer,
        responses={**ALARM_RESPONSES, 400: NoteErrorSerializer},
        summary="Clear an alarm",
    )
    def post(self, request: Request, pk: int) -> Response:
        serializer = AlarmNoteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        alarm = get_object_or_404(Alarm, pk=pk)
        return _alarm_action(
            alarm_clear, alarm=alarm, user=request.user, note=serializer.validated_data["note"]
        )
