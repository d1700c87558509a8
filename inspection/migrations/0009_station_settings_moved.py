"""Station's columns of labeling's and training's settings go, now that their rows hold them."""

from django.db import migrations

FIELDS = (
    "label_random_share",
    "retrain_after_labels",
    "retrain_every_hours",
    "gate_coverage_margin",
    "gate_auroc_margin",
)


class Migration(migrations.Migration):
    dependencies = [
        ("inspection", "0008_drift_settings"),
        ("labeling", "0005_labeling_settings"),
        ("workers", "0003_training_settings"),
    ]

    operations = [migrations.RemoveField(model_name="station", name=name) for name in FIELDS]
