"""Forward migrations that move data: every value arrives, and going back restores it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from inspection.models import Station
from inspection.supervision.models import DriftSettings
from labeling.models import LabelingSettings
from workers.models import TrainingSettings

# The last migrations with the other parts' settings still Station's columns.
COLUMNS = [
    ("inspection", "0007_regions_in_original_pixels"),
    ("labeling", "0004_regions_in_original_pixels"),
    ("workers", "0002_supervision"),
]
VALUES = {
    "label_random_share": 0.3,
    "retrain_after_labels": 7,
    "retrain_every_hours": 5,
    "gate_coverage_margin": 0.1,
    "gate_auroc_margin": 0.2,
    "drift_window": 64,
    "drift_significance": 0.05,
    "alarm_step_down": False,
    "alarm_retrain": True,
}


def _migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection)  # a fresh graph for the state now applied


def _latest() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_the_station_settings_move_to_their_rows_with_their_values_and_back():
    latest = _latest()
    try:
        executor = _migrate(COLUMNS)
        old = executor.loader.project_state(COLUMNS).apps.get_model("inspection", "Station")
        old.objects.create(slug="old-line", name="Old line", **VALUES)
        old.objects.create(slug="default-line", name="Default line")

        _migrate(latest)

        station = Station.objects.get(slug="old-line")
        rows = (DriftSettings.of(station), LabelingSettings.of(station), TrainingSettings.of(station))
        moved = {name: getattr(row, name) for row in rows for name in row.setting_names()}
        assert moved == {**VALUES, "alarm_emails": "", "alarm_chat_url": ""}  # later settings: defaults
        assert all(row._state.adding is False for row in rows)  # stored rows, not defaults
        default = Station.objects.get(slug="default-line")
        assert DriftSettings.objects.get(station=default).drift_window == 200

        executor = _migrate(COLUMNS)
        old = executor.loader.project_state(COLUMNS).apps.get_model("inspection", "Station")
        back = old.objects.values(*VALUES).get(slug="old-line")
        assert back == VALUES
    finally:
        _migrate(latest)
