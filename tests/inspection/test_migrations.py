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


@pytest.mark.django_db(transaction=True)
def test_units_decided_before_the_copy_get_their_latest_decision():
    from datetime import timedelta

    from django.contrib.auth.models import User
    from django.utils import timezone

    from inspection.models import Unit

    before = [("inspection", "0010_alarm_notifications")]
    latest = _latest()
    try:
        state = _migrate(before).loader.project_state(before).apps
        models = {
            name: state.get_model("inspection", name)
            for name in ("Station", "Unit", "DecisionEvent", "Prediction", "Disagreement")
        }
        version = state.get_model("models_registry", "ModelVersion").objects.create(
            name="old", version=1, mlflow_run_id="r", source_uri="s", architecture="a"
        )
        user = state.get_model("auth", "User").objects.create(username="ines")
        station = models["Station"].objects.create(slug="old-line", name="Old line")
        now = timezone.now()

        def unit(serial: str):
            return models["Unit"].objects.create(
                station=station,
                serial=serial,
                image="x.jpg",
                image_sha256="0" * 64,
                image_width=1920,
                image_height=1080,
                image_format="JPEG",
                received_at=now,
                status="decided",
                automation_level="full",
            )

        by_model, overridden, waiting = unit("M"), unit("O"), unit("W")
        models["Unit"].objects.filter(pk=waiting.pk).update(status="pending")
        events = models["DecisionEvent"].objects
        events.create(unit=by_model, verdict="fail", decided_by_model=version, reason="automatic")
        first = events.create(unit=overridden, verdict="fail", decided_by_model=version, reason="automatic")
        last = events.create(unit=overridden, verdict="pass", decided_by_user=user, reason="override")
        events.filter(pk=last.pk).update(created_at=now + timedelta(seconds=5))
        prediction = models["Prediction"].objects.create(
            unit=overridden,
            model_version=version,
            role="champion",
            defect_probability=0.9,
            label="stain",
            confidence=0.9,
            verdict="fail",
            latency_ms=5,
        )
        models["Disagreement"].objects.create(
            unit=overridden,
            decision=last,
            prediction=prediction,
            kind="image",
            human_verdict="pass",
            model_verdict="fail",
        )
        assert first.pk < last.pk

        _migrate(latest)

        copied = {
            unit.serial: (
                unit.decision_verdict,
                unit.decision_source,
                unit.decision_reason,
                unit.disagreement,
            )
            for unit in Unit.objects.filter(station__slug="old-line")
        }
        assert copied == {
            "M": ("fail", "model", "automatic", False),
            "O": ("pass", "human", "override", True),
            "W": ("", "", "", False),
        }
        assert Unit.objects.get(serial="O").decided_at == now + timedelta(seconds=5)
        assert User.objects.filter(username="ines").exists()
    finally:
        _migrate(latest)


@pytest.mark.django_db(transaction=True)
def test_the_receivers_answers_kept_in_webhook_deliveries_are_dropped():
    from django.utils import timezone

    from inspection.webhooks.models import WebhookDelivery

    before = [("inspection", "0012_partial_automation_audits")]
    latest = _latest()
    try:
        state = _migrate(before).loader.project_state(before).apps
        station = state.get_model("inspection", "Station").objects.create(slug="old-line", name="Old line")
        unit = state.get_model("inspection", "Unit").objects.create(
            station=station,
            serial="S",
            image="x.jpg",
            image_sha256="0" * 64,
            image_width=1920,
            image_height=1080,
            image_format="JPEG",
            received_at=timezone.now(),
            status="decided",
            automation_level="assisted",
        )
        user = state.get_model("auth", "User").objects.create(username="ines")
        events = state.get_model("inspection", "DecisionEvent").objects
        deliveries = state.get_model("inspection", "WebhookDelivery").objects
        errors = {
            "HTTP 500: -ERR NOAUTH the broker's own words": 500,
            "ConnectionError: connection refused": None,
            "": 200,
        }
        for error, code in errors.items():
            decision = events.create(unit=unit, verdict="pass", decided_by_user=user, reason="human")
            sent = {"url": "http://x/", "body": "{}", "last_error": error, "last_status_code": code}
            deliveries.create(station=station, decision=decision, **sent)

        _migrate(latest)

        kept = sorted(WebhookDelivery.objects.values_list("last_error", flat=True))
        assert kept == ["", "ConnectionError: connection refused", "HTTP 500"]
    finally:
        _migrate(latest)
