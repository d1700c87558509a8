from django.contrib import admin

from labeling.models import Annotation, Dataset, DatasetItem, ImageAsset


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "source_format", "class_list", "item_count", "created_at")
    search_fields = ("name",)
    readonly_fields = ("created_at",)

    @admin.display(description="classes")
    def class_list(self, dataset: Dataset) -> str:
        return ", ".join(dataset.classes)

    @admin.display(description="items")
    def item_count(self, dataset: Dataset) -> int:
        return dataset.items.count()


class AnnotationInline(admin.TabularInline):
    model = Annotation
    extra = 0
    fields = ("kind", "label", "geometry", "mask", "source", "created_at")
    readonly_fields = ("created_at",)


@admin.register(DatasetItem)
class DatasetItemAdmin(admin.ModelAdmin):
    list_display = ("source_name", "dataset", "split", "image")
    list_filter = ("dataset", "split")
    search_fields = ("source_name", "image__sha256")
    raw_id_fields = ("image",)
    inlines = [AnnotationInline]


@admin.register(ImageAsset)
class ImageAssetAdmin(admin.ModelAdmin):
    list_display = ("sha256", "width", "height", "format", "created_at")
    search_fields = ("sha256",)
    readonly_fields = ("sha256", "width", "height", "format", "created_at")
