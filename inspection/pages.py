"""The inspectors' pages: the station picker and the station page (server-rendered; the station
page's JavaScript, static/js/station.js, talks to the inspector API and the station WebSocket)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Count, Min, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from inspection.enums import UnitStatus
from inspection.models import Station


@login_required
@permission_required("inspection.view_station", raise_exception=True)
def station_list(request: HttpRequest) -> HttpResponse:
    pending = Q(units__status=UnitStatus.PENDING)
    stations = (
        Station.objects.filter(retired_at__isnull=True)
        .select_related("champion")
        .annotate(
            pending_count=Count("units", filter=pending),
            oldest_pending=Min("units__received_at", filter=pending),
        )
    )
    return render(request, "inspection/station_list.html", {"stations": stations})


@login_required
@permission_required("inspection.decide_unit", raise_exception=True)
def station_page(request: HttpRequest, slug: str) -> HttpResponse:
    station = get_object_or_404(Station, slug=slug)
    if station.retired:
        raise Http404(f"station {slug} is retired: its units are on the units page")
    return render(
        request,
        "inspection/station.html",
        {"station": station, "classes": station.defect_classes},
    )
