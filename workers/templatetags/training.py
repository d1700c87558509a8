"""`{% load training %}{% training_panel station %}`: the Training panel of a station's admin page
(recent jobs, gate reasons, candidate vs champion, live progress, "Retrain now").

The station's change form includes it, so inspection's admin need not import the training code.
"""

from __future__ import annotations

from django import template
from django.conf import settings
from django.urls import reverse

from workers.admin_views import retrain_permitted
from workers.models import TrainingSettings
from workers.retraining import labels_since_last_training, retrain_geometry_request
from workers.selectors import training_job_summary, training_jobs_recent

register = template.Library()


def _geometry_words() -> str:
    request = retrain_geometry_request()
    if request.kind == "auto" and request.input_size is None:
        return "geometry chosen from the data"
    size = f", {request.input_size} px" if request.input_size else ""
    return f"{request.kind} geometry{size}"


@register.inclusion_tag("workers/training_panel.html", takes_context=True)
def training_panel(context, station) -> dict:
    request = context.get("request")
    user = getattr(request, "user", None)
    return {
        "station": station,
        "settings": TrainingSettings.of(station),
        "training": {
            "jobs": [training_job_summary(job) for job in training_jobs_recent(station=station)],
            "labels_since": labels_since_last_training(station=station),
            "can_retrain": user is not None and retrain_permitted(user),
            "events_path": f"/ws/stations/{station.slug}/events/",
            "retrain_url": reverse("station-retrain", args=[station.pk]),
            "epochs": settings.LOUPE_RETRAIN_EPOCHS,
            "geometry": _geometry_words(),
        },
    }
