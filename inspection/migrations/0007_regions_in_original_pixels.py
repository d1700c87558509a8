"""Correct the regions stored before issue 12's fix: in the frame of a reduced JPEG decode.

`unit_submit` used to hand the predictor the image `image_check` had decoded at a reduced DCT
scale, and the predictor read that reduced size as the original: every region of a JPEG at least
twice the network input a side came back 1/2, 1/4 or 1/8 of its true position and size. The
unit's stored size and the model's input size say exactly which scale Pillow chose, so the
champion's and canary's predictions are rescaled (and say so in `regions_corrected`), and so
are the decisions' regions that copied them: automatic decisions, and a person's regions taken
with "Take model regions". Challenger predictions were made from the stored file and were right.
"""

import re

from django.db import migrations

ARCHITECTURE_INPUT_SIZE = re.compile(r"-(\d+)$")
TOLERANCE = 0.11  # regions are stored rounded to 0.1 px


def reduced_decode(width: int, height: int, input_size: int) -> int:
    """The DCT scale denominator Pillow's `draft` chose for a frame (1 when not reduced)."""
    scale = min(width // input_size, height // input_size)
    return next(s for s in (8, 4, 2, 1) if scale >= s)


def correction(width: int, height: int, input_size: int) -> tuple[float, float, int] | None:
    denominator = reduced_decode(width, height, input_size)
    if denominator == 1:
        return None
    return width / -(-width // denominator), height / -(-height // denominator), denominator


def same_region(a: dict, b: dict) -> bool:
    return a.get("label") == b.get("label") and all(
        abs(float(a[key]) - float(b[key])) <= TOLERANCE for key in ("x", "y", "width", "height")
    )


def rescaled(region: dict, factor_x: float, factor_y: float, width: int, height: int) -> dict:
    x, y = float(region["x"]) * factor_x, float(region["y"]) * factor_y
    right = min(float(width), x + float(region["width"]) * factor_x)
    bottom = min(float(height), y + float(region["height"]) * factor_y)
    return {
        **region,
        "x": round(x, 1),
        "y": round(y, 1),
        "width": round(right - x, 1),
        "height": round(bottom - y, 1),
    }


def correct(apps, schema_editor):
    Prediction = apps.get_model("inspection", "Prediction")
    DecisionEvent = apps.get_model("inspection", "DecisionEvent")
    affected = Prediction.objects.filter(
        role__in=["champion", "canary"], unit__image_format="JPEG", regions_corrected=""
    ).select_related("unit", "model_version")
    for prediction in affected.iterator(chunk_size=500):
        found = ARCHITECTURE_INPUT_SIZE.search(prediction.model_version.architecture)
        unit = prediction.unit
        if found is None or not prediction.regions:
            continue
        fixed = correction(unit.image_width, unit.image_height, int(found.group(1)))
        if fixed is None:
            continue
        factor_x, factor_y, denominator = fixed
        old = prediction.regions
        prediction.regions = [
            rescaled(r, factor_x, factor_y, unit.image_width, unit.image_height) for r in old
        ]
        prediction.regions_corrected = (
            f"rescaled x{factor_x:.3f}, y{factor_y:.3f} by migration inspection 0007: stored in the frame of a "
            f"1/{denominator} JPEG decode, not the {unit.image_width}x{unit.image_height} original"
        )
        prediction.save(update_fields=["regions", "regions_corrected"])
        for decision in DecisionEvent.objects.filter(unit_id=unit.pk):
            copied = [any(same_region(region, o) for o in old) for region in decision.regions]
            if any(copied):
                # an update, not save(): decision events refuse edits through the model, rightly
                fixed_regions = [
                    rescaled(region, factor_x, factor_y, unit.image_width, unit.image_height) if was else region
                    for region, was in zip(decision.regions, copied, strict=True)
                ]
                DecisionEvent.objects.filter(pk=decision.pk).update(regions=fixed_regions)


class Migration(migrations.Migration):
    dependencies = [("inspection", "0006_frames_as_sent"), ("models_registry", "0002_geometry")]

    operations = [migrations.RunPython(correct, migrations.RunPython.noop)]
