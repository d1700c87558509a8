"""The drift check's settings move from Station's columns to supervision's own row per station."""

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models

FIELDS = ("drift_window", "drift_significance", "alarm_step_down", "alarm_retrain")


def to_rows(apps, schema_editor):
    Station = apps.get_model("inspection", "Station")
    DriftSettings = apps.get_model("inspection", "DriftSettings")
    DriftSettings.objects.bulk_create(
        DriftSettings(station_id=values.pop("pk"), **values)
        for values in Station.objects.values("pk", *FIELDS)
    )


def to_columns(apps, schema_editor):
    Station = apps.get_model("inspection", "Station")
    for row in apps.get_model("inspection", "DriftSettings").objects.all():
        Station.objects.filter(pk=row.station_id).update(**{name: getattr(row, name) for name in FIELDS})


class Migration(migrations.Migration):
    dependencies = [("inspection", "0007_regions_in_original_pixels")]

    operations = [
        migrations.CreateModel(
            name="DriftSettings",
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
                    "drift_window",
                    models.PositiveIntegerField(
                        default=200,
                        help_text="Units per drift check: each check compares the next this many units the champion predicted with its reference (larger windows see smaller shifts, later).",
                        validators=[
                            django.core.validators.MinValueValidator(20),
                            django.core.validators.MaxValueValidator(5000),
                        ],
                    ),
                ),
                (
                    "drift_significance",
                    models.FloatField(
                        default=0.01,
                        help_text="Chance of a false alarm per check when nothing changed (all tests of a check together, Holm-corrected).",
                        validators=[
                            django.core.validators.MinValueValidator(1e-06),
                            django.core.validators.MaxValueValidator(0.2),
                        ],
                    ),
                ),
                (
                    "alarm_step_down",
                    models.BooleanField(
                        default=True,
                        help_text="When an alarm is raised, step the automation level down one notch (full -> partial -> assisted).",
                    ),
                ),
                (
                    "alarm_retrain",
                    models.BooleanField(
                        default=False,
                        help_text="When an alarm is raised, also start retraining on the labels collected.",
                    ),
                ),
            ],
            options={"verbose_name": "drift settings", "verbose_name_plural": "drift settings"},
        ),
        migrations.RunPython(to_rows, to_columns),
        *(migrations.RemoveField(model_name="station", name=name) for name in FIELDS),
    ]
