"""The retraining schedule and the gate's margins move from Station's columns to the workers' own
row per station."""

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models

FIELDS = ("retrain_after_labels", "retrain_every_hours", "gate_coverage_margin", "gate_auroc_margin")


def to_rows(apps, schema_editor):
    Station = apps.get_model("inspection", "Station")
    TrainingSettings = apps.get_model("workers", "TrainingSettings")
    TrainingSettings.objects.bulk_create(
        TrainingSettings(station_id=values.pop("pk"), **values)
        for values in Station.objects.values("pk", *FIELDS)
    )


def to_columns(apps, schema_editor):
    Station = apps.get_model("inspection", "Station")
    for row in apps.get_model("workers", "TrainingSettings").objects.all():
        Station.objects.filter(pk=row.station_id).update(**{name: getattr(row, name) for name in FIELDS})


SHARE = [django.core.validators.MinValueValidator(0.0), django.core.validators.MaxValueValidator(1.0)]


class Migration(migrations.Migration):
    dependencies = [("workers", "0002_supervision"), ("inspection", "0008_drift_settings")]

    operations = [
        migrations.CreateModel(
            name="TrainingSettings",
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
                    "retrain_after_labels",
                    models.PositiveIntegerField(
                        default=100,
                        help_text="Retrain when this many units have new accepted labels since the last training (0: never on label count).",
                    ),
                ),
                (
                    "retrain_every_hours",
                    models.PositiveIntegerField(
                        default=0,
                        help_text="Also retrain on this schedule when the labels changed since the last training (0: no schedule).",
                    ),
                ),
                (
                    "gate_coverage_margin",
                    models.FloatField(
                        default=0.0,
                        help_text="A candidate may cover this much less than the champion at the target escape rate and still go into shadow.",
                        validators=SHARE,
                    ),
                ),
                (
                    "gate_auroc_margin",
                    models.FloatField(
                        default=0.0,
                        help_text="A candidate's AUROC may be this much lower than the champion's and still pass.",
                        validators=SHARE,
                    ),
                ),
            ],
            options={"verbose_name": "training settings", "verbose_name_plural": "training settings"},
        ),
        migrations.RunPython(to_rows, to_columns),
    ]
