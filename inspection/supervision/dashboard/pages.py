"""The supervisors' dashboard pages (server-rendered shells; static/js/dashboard.js fetches the
figures from `inspection.supervision.dashboard.api` and listens on `/ws/dashboard/`)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from inspection.models import Station
from inspection.supervision.dashboard.api import CHANGE_ALARM, VIEW_DASHBOARD
from inspection.supervision.dashboard.periods import PERIODS


@login_required
@permission_required(VIEW_DASHBOARD, raise_exception=True)
def dashboard_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "inspection/dashboard.html",
        {"periods": list(PERIODS), "can_change_alarms": request.user.has_perm(CHANGE_ALARM)},
    )


@login_required
@permission_required(VIEW_DASHBOARD, raise_exception=True)
def dashboard_station_page(request: HttpRequest, slug: str) -> HttpResponse:
    station = get_object_or_404(Station, slug=slug)
    return render(
        request,
        "inspection/dashboard_station.html",
        {
            "station": station,
            "periods": list(PERIODS),
            "can_change_alarms": request.user.has_perm(CHANGE_ALARM),
        },
    )
