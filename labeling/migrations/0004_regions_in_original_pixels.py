"""The verdict labels that copied a model's reduced-frame regions, rescaled as their decisions
were (see inspection's migration 0007): a box annotation from a decision is corrected when,
rescaled, it is one of the unit's corrected model regions."""

import importlib

from django.db import migrations

regions = importlib.import_module("inspection.migrations.0007_regions_in_original_pixels")


def correct(apps, schema_editor):
    Prediction = apps.get_model("inspection", "Prediction")
    DecisionEvent = apps.get_model("inspection", "DecisionEvent")
    Annotation = apps.get_model("labeling", "Annotation")
    corrected = Prediction.objects.exclude(regions_corrected="").select_related("unit", "model_version")
    for prediction in corrected.iterator(chunk_size=500):
        unit = prediction.unit
        found = regions.ARCHITECTURE_INPUT_SIZE.search(prediction.model_version.architecture)
        fixed = (
            regions.correction(unit.image_width, unit.image_height, int(found.group(1))) if found else None
        )
        if fixed is None:
            continue
        factor_x, factor_y, _ = fixed
        sources = [
            f"decision:{pk}"
            for pk in DecisionEvent.objects.filter(unit_id=unit.pk).values_list("pk", flat=True)
        ]
        for annotation in Annotation.objects.filter(source__in=sources, kind="box"):
            box = {**annotation.geometry, "label": annotation.label}
            moved = regions.rescaled(box, factor_x, factor_y, unit.image_width, unit.image_height)
            if any(regions.same_region(moved, r) for r in prediction.regions):
                Annotation.objects.filter(pk=annotation.pk).update(
                    geometry={key: float(moved[key]) for key in ("x", "y", "width", "height")}
                )


class Migration(migrations.Migration):
    dependencies = [("labeling", "0003_labeling_work"), ("inspection", "0007_regions_in_original_pixels")]

    operations = [migrations.RunPython(correct, migrations.RunPython.noop)]
