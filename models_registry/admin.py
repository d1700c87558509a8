from django.contrib import admin

from models_registry.models import ModelVersion, TrainingJob


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Versions are registered by training; the admin shows them and never edits them."""

    list_display = ("name", "version", "dataset_name", "architecture", "test_accuracy", "created_at")
    list_filter = ("name", "dataset_name")
    readonly_fields = [field.name for field in ModelVersion._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="test accuracy")
    def test_accuracy(self, version: ModelVersion):
        return (version.metrics.get("test") or {}).get("image_accuracy")


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    """Jobs are written by the retraining services; the admin shows them (queue one from the
    station's page, "Retrain now")."""

    list_display = ("id", "station", "snapshot", "status", "trigger", "attempts", "candidate", "created_at")
    list_filter = ("status", "trigger", "station")
    list_select_related = ("station", "snapshot", "snapshot__dataset", "candidate")
    readonly_fields = [field.name for field in TrainingJob._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
