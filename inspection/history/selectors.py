"""What the units page and the unit page show of a unit: the regions to draw, its score, and
the model's full output where the viewer may see it (`unit_model_visible`)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import Prefetch, QuerySet
from django.urls import reverse

from inspection.models import DecisionEvent, Prediction, Unit
from inspection.selectors import unit_current_decision, unit_deciding_prediction, unit_model_visible

# A prediction's pooled features are large and no page shows them.
_PREDICTION_SHOWN = Prediction.objects.select_related("model_version").defer("embedding", "timings_ms")


def units_for_cards(units: QuerySet[Unit]) -> QuerySet[Unit]:
    """`units` with what a card needs loaded in three queries, however many cards."""
    return units.select_related("station", "deciding_model").prefetch_related(
        Prefetch("decisions", queryset=DecisionEvent.objects.select_related("decided_by_user")),
        Prefetch("predictions", queryset=_PREDICTION_SHOWN),
    )


def unit_card(unit: Unit) -> dict:
    """A unit on the units page (grid and list): the regions drawn on its thumbnail are its
    decision's, or the model's while it waits (none while a blind unit waits)."""
    decision = unit_current_decision(unit=unit)
    visible = unit_model_visible(unit=unit)
    prediction = unit_deciding_prediction(unit=unit) if visible else None
    if decision is not None:
        regions = decision.regions
    else:
        regions = prediction.regions if prediction is not None else []
    return {
        "unit": unit,
        "decision": decision,
        "decided_by": _actor(decision),
        "score": prediction.defect_probability if prediction is not None else None,
        "regions": [_region_shape(region) for region in regions],
        "url": reverse("unit-page", kwargs={"pk": unit.pk}),
        "thumbnail_url": reverse("unit-image", kwargs={"pk": unit.pk}) + "?size=thumbnail",
    }


def unit_layers(*, unit: Unit, predictions: Sequence[Prediction], visible: bool) -> dict:
    """The unit page's drawing: the image, and each layer of regions in its pixels (each model's
    regions with their masks; the person's regions of the current human decision)."""
    layers = []
    if visible:
        for prediction in predictions:
            version = prediction.model_version
            layers.append(
                {
                    "id": f"model-{prediction.pk}",
                    "kind": "model",
                    "name": f"{prediction.get_role_display()} {version.name}:{version.version}",
                    "regions": prediction.regions,
                }
            )
    human = unit.decisions.filter(decided_by_user__isnull=False).order_by("-created_at", "-id").first()
    if human is not None and human.regions:
        layers.append(
            {"id": "person", "kind": "person", "name": "person's regions", "regions": human.regions}
        )
    return {
        "image_url": reverse("unit-image", kwargs={"pk": unit.pk}),
        "width": unit.image_width,
        "height": unit.image_height,
        "layers": layers,
    }


def _actor(decision: DecisionEvent | None) -> str:
    if decision is None:
        return ""
    if decision.decided_by_user is not None:
        return decision.decided_by_user.get_username()
    return "model"


def _region_shape(region: dict) -> dict:
    return {key: region[key] for key in ("x", "y", "width", "height")} | {"label": region.get("label", "")}
