"""Shadow predictions lost on the way (the broker down when they were queued, a worker killed
holding them) are queued again by beat's sweep: each unit the challenger should have seen, once."""

from datetime import timedelta

import pytest

from inspection.background import Task
from inspection.enums import AutomationLevel
from inspection.models import Unit
from inspection.services.predictions import challenger_prediction_make, challenger_predictions_resend
from inspection.services.rollout import challenger_set
from inspection.services.units import unit_submit
from tests.inspection.factories import jpeg_bytes
from tests.inspection.test_webhooks import queued_tasks

# Not transactional: the after-commit callbacks that would queue the predictions never run, as
# when the broker was down at the time.
pytestmark = pytest.mark.django_db


def frame(seed: int) -> bytes:
    return jpeg_bytes(seed, width=1280, height=720)


def test_units_without_the_challengers_prediction_are_queued_again(
    make_station, make_model_version, media_root, redis_client
):
    first, second = make_model_version(version=1), make_model_version(version=2)
    station = make_station(level=AutomationLevel.PARTIAL, champion=first)
    before = unit_submit(station=station, serial="SN-BEFORE", image_data=frame(1), filename="unit.jpg")
    challenger_set(station=station, model_version=second, user=None)
    station.refresh_from_db()
    lost = [
        unit_submit(station=station, serial=f"SN-LOST-{index}", image_data=frame(index), filename="unit.jpg")
        for index in range(2)
    ]
    made = unit_submit(station=station, serial="SN-MADE", image_data=frame(7), filename="unit.jpg")
    challenger_prediction_make(unit=made.unit, model_version=second)

    count = challenger_predictions_resend(older_than=timedelta(0))

    # the units received while the challenger was in shadow, without its prediction; not the one
    # received before it was set, nor the one it already predicted
    assert count == 2
    assert queued_tasks(redis_client) == [
        (Task.CHALLENGER_PREDICT, [submission.unit.id, second.id]) for submission in lost
    ]
    assert before.unit.predictions.filter(model_version=second).count() == 0


def test_recent_units_are_left_to_the_queue_and_stations_without_a_challenger_are_skipped(
    make_station, make_model_version, media_root, redis_client
):
    first, second = make_model_version(version=1), make_model_version(version=2)
    station = make_station(level=AutomationLevel.PARTIAL, champion=first)
    challenger_set(station=station, model_version=second, user=None)
    unit_submit(station=station, serial="SN-NEW", image_data=frame(3), filename="unit.jpg")
    plain = make_station(slug="screens-2", level=AutomationLevel.PARTIAL, champion=first)
    unit_submit(station=plain, serial="SN-PLAIN", image_data=frame(4), filename="unit.jpg")

    # a unit a minute old may still be in the queue: the sweep waits two
    assert challenger_predictions_resend() == 0
    assert queued_tasks(redis_client) == []
    assert Unit.objects.count() == 2
