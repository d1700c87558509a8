"""Regions stored before issue 12's fix, in the frame of a reduced JPEG decode, are corrected by
migrations inspection 0007 and labeling 0004, and say so."""

from __future__ import annotations

import contextlib
import importlib

import pytest
from django.apps import apps
from django.db import connection
from django.utils import timezone

from inspection.enums import DecisionReason, PredictionRole
from inspection.models import DecisionEvent, Prediction, Unit
from inspection.services.decisions import HumanRegion, decision_record
from labeling.models import Annotation
from models_registry.models import ModelVersion
from tests.inspection.factories import person

pytestmark = pytest.mark.django_db


@contextlib.contextmanager
def decision_events_writable():
    """Row triggers off for the block (`session_replication_role`, the test role is a superuser)."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            yield
        finally:
            cursor.execute("SET session_replication_role = origin")


inspection_fix = importlib.import_module("inspection.migrations.0007_regions_in_original_pixels")
labeling_fix = importlib.import_module("labeling.migrations.0004_regions_in_original_pixels")

# What the old code returned for a scratch on a 1280x720 unit: the 640x360 frame of a 1/2 decode.
REDUCED = {"x": 300.9, "y": 157.9, "width": 40.0, "height": 12.5, "label": "scratch", "score": 0.91}


@pytest.mark.parametrize(
    "size, input_size, expected",
    [
        ((640, 360), 256, None),  # under twice the input a side: decoded whole, regions were right
        ((1280, 720), 256, (2.0, 2.0, 2)),
        ((1920, 1080), 256, (4.0, 4.0, 4)),  # 1080 // 256 = 4: a quarter
        ((1920, 1080), 512, (2.0, 2.0, 2)),
        ((4000, 3000), 256, (8.0, 8.0, 8)),
        ((1000, 700), 256, (2.0, 2.0, 2)),
        ((1001, 701), 256, (1001 / 501, 701 / 351, 2)),  # Pillow rounds the reduced size up
    ],
)
def test_the_reduction_is_the_one_pillow_chose(size, input_size, expected):
    found = inspection_fix.correction(*size, input_size)
    assert found == (pytest.approx(expected) if expected is not None else None)


def _old_unit(station, champion, *, serial: str, fmt: str = "JPEG", size=(1280, 720)) -> Unit:
    return Unit.objects.create(
        station=station,
        serial=serial,
        image=f"units/{serial}.jpg",
        image_sha256=serial * 4,
        image_width=size[0],
        image_height=size[1],
        image_format=fmt,
        received_at=timezone.now(),
        status="pending",
        automation_level="assisted",
        queue_reason="assisted",
        deciding_model=champion,
    )


def test_stored_reduced_frame_regions_are_rescaled_and_marked(make_station, media_root):
    # given a model of before geometries and units it judged with the bug
    champion = ModelVersion.objects.create(
        name="old", version=1, mlflow_run_id="r", source_uri="/nowhere",
        architecture="defectnet-efficientnet_lite0-256", classes=["crack", "scratch"],
    )  # fmt: skip
    station = make_station(level="assisted", champion=champion)
    jpeg = _old_unit(station, champion, serial="JPEG-1280")
    png = _old_unit(station, champion, serial="PNG-1280", fmt="PNG")
    small = _old_unit(station, champion, serial="JPEG-640", size=(640, 360))
    for unit in (jpeg, png, small):
        Prediction.objects.create(
            unit=unit, model_version=champion, role=PredictionRole.CHAMPION, defect_probability=0.9,
            label="scratch", confidence=0.9, verdict="fail", regions=[REDUCED], latency_ms=10,
        )  # fmt: skip
    # an inspector took the model's region (A) and drew one of their own
    inspector = person("ines")
    decision_record(
        unit=jpeg,
        user=inspector,
        verdict="fail",
        defect_classes=["scratch"],
        regions=[
            HumanRegion(300.9, 157.9, 40.0, 12.5, "scratch"),
            HumanRegion(900.0, 500.0, 30.0, 30.0, "crack"),
        ],
    )
    # when the migrations run (before 0015 made decision events append-only in PostgreSQL: its
    # trigger is lifted here as it did not exist yet then)
    with decision_events_writable():
        inspection_fix.correct(apps, None)
        labeling_fix.correct(apps, None)
    # then the JPEG's prediction is in original pixels and says what was done
    fixed = Prediction.objects.get(unit=jpeg)
    assert fixed.regions == [{**REDUCED, "x": 601.8, "y": 315.8, "width": 80.0, "height": 25.0}]
    assert "1/2 JPEG decode" in fixed.regions_corrected and "1280x720" in fixed.regions_corrected
    # the PNG and the small JPEG were decoded whole: untouched
    for unit in (png, small):
        untouched = Prediction.objects.get(unit=unit)
        assert untouched.regions == [REDUCED] and untouched.regions_corrected == ""
    # the person's copy of the model's region moved with it; their own region stayed
    decision = DecisionEvent.objects.get(unit=jpeg, reason=DecisionReason.HUMAN)
    assert decision.regions == [
        {"x": 601.8, "y": 315.8, "width": 80.0, "height": 25.0, "label": "scratch"},
        {"x": 900.0, "y": 500.0, "width": 30.0, "height": 30.0, "label": "crack"},
    ]
    # and so did the label the verdict made
    boxes = {
        a.label: a.geometry for a in Annotation.objects.filter(source=f"decision:{decision.pk}", kind="box")
    }
    assert boxes["scratch"] == {"x": 601.8, "y": 315.8, "width": 80.0, "height": 25.0}
    assert boxes["crack"] == {"x": 900.0, "y": 500.0, "width": 30.0, "height": 30.0}
    # running again changes nothing
    inspection_fix.correct(apps, None)
    assert Prediction.objects.get(unit=jpeg).regions == fixed.regions
