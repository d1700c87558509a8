"""The station admin page's "Retrain now" button (the Training panel is `templatetags.training`).

Routed in `config/urls.py` under the station's admin URL, so inspection's admin need not know
the training code.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.http import require_POST

from inspection.models import Station
from labeling.snapshots import EmptySnapshot
from workers.models import TrainingTrigger
from workers.retraining import training_job_request

# Who may press "Retrain now": whoever may change the station's settings (supervisors).
RETRAIN_PERMISSION = "inspection.change_station"


def retrain_permitted(user) -> bool:
    return user.has_perm(RETRAIN_PERMISSION)


@require_POST
def _station_retrain(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    """Snapshot the station's data and queue its training, then back to the station's page."""
    if not retrain_permitted(request.user):
        raise PermissionDenied
    station = get_object_or_404(Station, pk=pk)
    try:
        job, created = training_job_request(station=station, trigger=TrainingTrigger.ADMIN, user=request.user)
    except EmptySnapshot as error:
        messages.error(request, f"Nothing to train on: {error}.", fail_silently=True)
    else:
        if created:
            messages.info(
                request, f"Training job {job.pk} queued on snapshot {job.snapshot}.", fail_silently=True
            )
        else:
            messages.warning(
                request,
                f"Nothing new to train: job {job.pk} on snapshot {job.snapshot} is "
                f"{job.get_status_display()}.",
                fail_silently=True,
            )
    return HttpResponseRedirect(reverse("admin:inspection_station_change", args=[station.pk]))


# Behind the admin's login (staff only; others go to its login page) and its CSRF check.
station_retrain = admin.site.admin_view(_station_retrain)
