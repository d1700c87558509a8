from django.contrib import admin, messages
from django.http import FileResponse

from inspection.admin import ReadOnlyAdmin, ReadOnlyInline
from labeling.formats.services import DatasetExportError, dataset_export_zip
from labeling.models import Annotation, Dataset, DatasetItem, ImageAsset, LabelSubmission, LabelTask

EXPORT_TITLES = {"coco": "COCO", "yolo": "YOLO", "voc": "Pascal VOC", "labelstudio": "Label Studio JSON"}


def _export_action(format: str, title: str):
    """An admin action downloading one data set as a zip in `format` (what `export_dataset`
    writes; the zip's `.loupe-export` manifest lists what was left out or approximated)."""

    @admin.action(description=f"Export as {title} (zip)", permissions=["view"])
    def export(model_admin: admin.ModelAdmin, request, queryset):
        if queryset.count() != 1:
            model_admin.message_user(request, "Select exactly one data set to export.", messages.WARNING)
            return None
        dataset = queryset.get()
        try:
            archive, _summary = dataset_export_zip(dataset=dataset, format=format)
        except DatasetExportError as error:
            model_admin.message_user(request, f"Export failed: {error}", messages.ERROR)
            return None
        return FileResponse(
            archive,
            as_attachment=True,
            filename=f"{dataset.name}-{format}.zip",
            content_type="application/zip",
        )

    export.__name__ = f"export_{format}"
    return export


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "station", "source_format", "class_list", "item_count", "created_at")
    search_fields = ("name",)
    readonly_fields = ("created_at",)
    actions = [_export_action(format, title) for format, title in EXPORT_TITLES.items()]

    @admin.display(description="classes")
    def class_list(self, dataset: Dataset) -> str:
        return ", ".join(dataset.classes)

    @admin.display(description="items")
    def item_count(self, dataset: Dataset) -> int:
        return dataset.items.count()


class AnnotationInline(admin.TabularInline):
    model = Annotation
    extra = 0
    fields = ("kind", "label", "geometry", "mask", "source", "active", "created_at")
    readonly_fields = ("created_at",)


@admin.register(DatasetItem)
class DatasetItemAdmin(admin.ModelAdmin):
    list_display = ("source_name", "dataset", "split", "labelled_at", "image")
    list_filter = ("dataset", "split")
    search_fields = ("source_name", "image__sha256")
    raw_id_fields = ("image", "unit")
    inlines = [AnnotationInline]


@admin.register(ImageAsset)
class ImageAssetAdmin(admin.ModelAdmin):
    list_display = ("sha256", "width", "height", "format", "created_at")
    search_fields = ("sha256",)
    readonly_fields = ("sha256", "width", "height", "format", "created_at")


class SubmissionInline(ReadOnlyInline):
    model = LabelSubmission
    fk_name = "task"
    fields = ("author", "status", "no_defect", "reviewer", "review_comment", "reviewed_at", "created_at")
    readonly_fields = fields


@admin.register(LabelTask)
class LabelTaskAdmin(ReadOnlyAdmin):
    list_display = ("id", "station", "tier", "margin", "random_slice", "status", "claimed_by", "updated_at")
    list_filter = ("station", "status", "tier", "random_slice")
    search_fields = ("item__source_name",)
    raw_id_fields = ("item",)
    inlines = [SubmissionInline]


@admin.register(LabelSubmission)
class LabelSubmissionAdmin(ReadOnlyAdmin):
    list_display = ("id", "station", "task", "author", "status", "reviewer", "reviewed_at", "created_at")
    list_filter = ("station", "status")
    search_fields = ("author__username", "reviewer__username", "review_comment")
