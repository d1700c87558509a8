"""The labelers' pages: the station picker, the labeling page and the review page
(server-rendered; static/js/labeling/page.js and its tool modules talk to the labeling API)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from inspection.models import Station
from labeling.models import TaskStatus

KEYED_CLASSES = 9  # keys 1-9 choose a class; further classes are picked with the mouse


@login_required
@permission_required("labeling.label_item", raise_exception=True)
def labeling_station_list(request: HttpRequest) -> HttpResponse:
    stations = Station.objects.annotate(
        open_tasks=Count("label_tasks", filter=Q(label_tasks__status=TaskStatus.OPEN), distinct=True),
        in_review=Count("label_tasks", filter=Q(label_tasks__status=TaskStatus.IN_REVIEW), distinct=True),
    )
    return render(request, "labeling/station_list.html", {"stations": stations})


def _page(request: HttpRequest, slug: str, mode: str) -> HttpResponse:
    station = get_object_or_404(Station, slug=slug)
    dataset = getattr(station, "dataset", None)
    classes = list(dataset.classes) if dataset is not None else list(station.defect_classes)
    return render(
        request,
        "labeling/label.html",
        {"station": station, "mode": mode, "classes": classes, "keyed_classes": KEYED_CLASSES},
    )


@login_required
@permission_required("labeling.label_item", raise_exception=True)
def labeling_page(request: HttpRequest, slug: str) -> HttpResponse:
    return _page(request, slug, "label")


@login_required
@permission_required("labeling.label_item", raise_exception=True)
def review_page(request: HttpRequest, slug: str) -> HttpResponse:
    return _page(request, slug, "review")
