"""The random labeling share moves from Station's columns to labeling's own row per station."""

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models

FIELDS = ("label_random_share",)


def to_rows(apps, schema_editor):
    Station = apps.get_model("inspection", "Station")
    LabelingSettings = apps.get_model("labeling", "LabelingSettings")
    LabelingSettings.objects.bulk_create(
        LabelingSettings(station_id=values.pop("pk"), **values)
        for values in Station.objects.values("pk", *FIELDS)
    )


def to_columns(apps, schema_editor):
    Station = apps.get_model("inspection", "Station")
    for row in apps.get_model("labeling", "LabelingSettings").objects.all():
        Station.objects.filter(pk=row.station_id).update(**{name: getattr(row, name) for name in FIELDS})


class Migration(migrations.Migration):
    dependencies = [("labeling", "0004_regions_in_original_pixels"), ("inspection", "0008_drift_settings")]

    operations = [
        migrations.CreateModel(
            name="LabelingSettings",
            fields=[
                (
                    "station",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="%(class)s",
                        serialize=False,
                        to="inspection.station",
                    ),
                ),
                (
                    "label_random_share",
                    models.FloatField(
                        default=0.05,
                        help_text="Share of units the model decided alone that go to the labeling queue at random, whatever their usefulness: an unbiased sample for evaluation and calibration.",
                        validators=[
                            django.core.validators.MinValueValidator(0.0),
                            django.core.validators.MaxValueValidator(1.0),
                        ],
                    ),
                ),
            ],
            options={"verbose_name": "labeling settings", "verbose_name_plural": "labeling settings"},
        ),
        migrations.RunPython(to_rows, to_columns),
    ]
