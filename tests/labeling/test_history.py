"""What labeling adds to a unit's timeline: its label task, each submission and each review, in
order, with who did what."""

from __future__ import annotations

import pytest

from inspection.enums import AutomationLevel
from inspection.history.timeline import unit_timeline
from inspection.models import Prediction
from inspection.services.decisions import decision_record
from inspection.services.units import unit_submit
from inspection.webhooks.models import WebhookDelivery
from labeling.models import LabelTask
from labeling.work import Shape, label_submit, review_reject
from tests.inspection.factories import jpeg_bytes, person

pytestmark = pytest.mark.django_db


def test_a_units_timeline_tells_its_label_task_submissions_reviews_and_webhook(make_station, media_root):
    station = make_station(
        slug="screens-1",
        level=AutomationLevel.ASSISTED,
        defect_classes=["crack"],
        webhook_url="https://mes.example/loupe",
        webhook_secret="s3cret",
    )
    unit = unit_submit(
        station=station, serial="SN-1", image_data=jpeg_bytes(1, width=1280, height=720), filename="a.jpg"
    ).unit
    Prediction.objects.filter(unit=unit).update(defect_probability=0.55)  # uncertain: a label task
    decision_record(unit=unit, user=person("ines"), verdict="fail", defect_classes=["crack"])
    task = LabelTask.objects.get(item__unit=unit)
    box = Shape("box", "crack", {"x": 640.0, "y": 360.0, "width": 200.0, "height": 90.0})
    submission = label_submit(task=task, user=person("lea", role="labeler"), shapes=[box])
    review_reject(submission=submission, user=person("rui", role="labeler"), comment="the box misses the tip")

    entries = unit_timeline(unit=unit, model_visible=True)
    kinds = [entry.kind for entry in entries]
    assert kinds[:3] == ["received", "prediction", "decision"]
    labeling = [entry for entry in entries if entry.kind in ("label", "review")]
    assert [entry.title for entry in labeling] == [
        f"Label task {task.pk} in data set {task.item.dataset.name}",
        "Labelled: crack (1 shape)",
        f"Review: submission {submission.pk} rejected",
    ]
    assert [entry.actor for entry in labeling] == ["", "lea", "rui"]
    assert labeling[2].lines == ("the box misses the tip",)
    # the inspector's decision went to the station's webhook: its delivery is in the story too
    delivery = WebhookDelivery.objects.get(decision__unit=unit)
    webhook = next(entry for entry in entries if entry.kind == "webhook")
    assert webhook.title == f"Webhook {delivery.status}" and "to https://mes.example/loupe" in webhook.lines
    assert kinds.index("decision") < kinds.index("webhook")
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=1, last_status_code=302, last_duration_ms=41, last_error="HTTP 302: a redirect, not followed"
    )
    webhook = next(entry for entry in unit_timeline(unit=unit, model_visible=True) if entry.kind == "webhook")
    assert webhook.lines[-2:] == (
        "last answer HTTP 302 in 41 ms",
        "last attempt: HTTP 302: a redirect, not followed",
    )
