"""The units page (search, grid or list, cursor pages, CSV export) and the unit page (image with
its layers, the model's output, the timeline, comments). Server-rendered; static/js/unit.js
draws the unit page's layers with the station page's viewport and region drawing."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from inspection.history.export import units_csv_rows
from inspection.history.search import CursorInvalid, UnitFilter, units_page, units_search
from inspection.history.selectors import unit_card, unit_layers, units_for_cards
from inspection.history.services import CommentRejected, comment_add
from inspection.history.timeline import policy_in_words, unit_timeline
from inspection.models import Unit
from inspection.selectors import unit_current_decision, unit_model_visible

VIEWS = ("grid", "list")


@login_required
@permission_required("inspection.view_unit", raise_exception=True)
@require_GET
def units_page_view(request: HttpRequest, slug: str | None = None) -> HttpResponse:
    query = request.GET.copy()
    if slug is not None:
        query["station"] = slug
    search = UnitFilter(query)
    view = request.GET.get("view") if request.GET.get("view") in VIEWS else "grid"
    context = {"search": search, "view": view, "cards": [], "page": None}
    if search.is_valid():
        try:
            page = units_page(
                units_for_cards(units_search(filters=search.cleaned_data)), cursor=request.GET.get("cursor")
            )
        except CursorInvalid as error:
            search.add_error(None, str(error))
        else:
            kept = [*search.applied(), ("view", view)]
            context.update(
                page=page,
                cards=[unit_card(unit) for unit in page.units],
                older_url=_with(kept, page.older),
                newer_url=_with(kept, page.newer),
                newest_url="?" + urlencode(kept),
                export_url=reverse("units-export") + "?" + urlencode(search.applied()),
                without_alarm_url="?" + urlencode([pair for pair in kept if pair[0] != "alarm"]),
                other_view_url="?" + urlencode([*search.applied(), ("view", VIEWS[1 - VIEWS.index(view)])]),
            )
    status = 200 if search.is_valid() and not search.non_field_errors() else 400
    return render(request, "inspection/units.html", context, status=status)


@login_required
@permission_required("inspection.view_dashboard", raise_exception=True)
@require_GET
def units_export(request: HttpRequest) -> HttpResponse:
    """The filtered units and their decisions as CSV, streamed from a server-side cursor: memory
    stays flat however many rows (`bench/units_page.py` measures it)."""
    search = UnitFilter(request.GET)
    if not search.is_valid():
        return JsonResponse({"detail": "invalid filter", "errors": search.error_summary()}, status=400)
    name = f"loupe-units-{timezone.now():%Y%m%d-%H%M%S}.csv"
    response = StreamingHttpResponse(
        units_csv_rows(units_search(filters=search.cleaned_data)), content_type="text/csv"
    )
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@login_required
@permission_required("inspection.view_unit", raise_exception=True)
@require_GET
def unit_page_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _unit_page(request, _unit_or_404(pk))


@login_required
@permission_required("inspection.add_unitcomment", raise_exception=True)
@require_POST
def unit_comment(request: HttpRequest, pk: int) -> HttpResponse:
    unit = _unit_or_404(pk)
    body = request.POST.get("body", "")
    try:
        comment_add(unit=unit, author=request.user, body=body)
    except CommentRejected as error:
        return _unit_page(request, unit, comment_error=str(error), comment_body=body, status=400)
    return redirect(reverse("unit-page", kwargs={"pk": unit.pk}) + "#timeline")


def _unit_or_404(pk: int) -> Unit:
    return get_object_or_404(Unit.objects.select_related("station", "deciding_model"), pk=pk)


def _unit_page(
    request: HttpRequest, unit: Unit, *, comment_error: str = "", comment_body: str = "", status: int = 200
) -> HttpResponse:
    visible = unit_model_visible(unit=unit)
    predictions = list(unit.predictions.select_related("model_version").defer("embedding")) if visible else []
    return render(
        request,
        "inspection/unit.html",
        {
            "unit": unit,
            "decision": unit_current_decision(unit=unit),
            "model_visible": visible,
            "predictions": [
                {
                    "prediction": prediction,
                    "class_scores": sorted(prediction.class_scores.items(), key=lambda item: -item[1]),
                }
                for prediction in predictions
            ],
            "routing_words": policy_in_words(unit.routing),
            "layers": unit_layers(unit=unit, predictions=predictions, visible=visible),
            "timeline": unit_timeline(unit=unit, model_visible=visible),
            "station_units_url": reverse("station-units", kwargs={"slug": unit.station.slug}),
            "comment_error": comment_error,
            "comment_body": comment_body,
        },
        status=status,
    )


def _with(kept: list[tuple[str, str]], cursor: str | None) -> str | None:
    return "?" + urlencode([*kept, ("cursor", cursor)]) if cursor else None
