from django.contrib import admin

from models_registry.models import ModelVersion


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
