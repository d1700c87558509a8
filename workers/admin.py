"""Training jobs in the admin (read-only). The station page's Training panel and its "Retrain now"
button are `workers.templatetags.training` and `workers.admin_views`."""

from django.contrib import admin

from inspection.admin import ReadOnlyAdmin
from workers.models import TrainingJob


@admin.register(TrainingJob)
class TrainingJobAdmin(ReadOnlyAdmin):
    """Jobs are written by the retraining services; the admin shows them (queue one from the
    station's page, "Retrain now")."""

    list_display = ("id", "station", "snapshot", "status", "trigger", "attempts", "candidate", "created_at")
    list_filter = ("status", "trigger", "station")
    list_select_related = ("station", "snapshot", "snapshot__dataset", "candidate")
    readonly_fields = [field.name for field in TrainingJob._meta.fields]
