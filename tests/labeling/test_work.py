"""Labeling work: verdicts become labels, the queue's order and claims, submissions and review.

Units go through the real line service with the tiny model; people through the real services and
the labeling API.
"""

from __future__ import annotations

import base64
import io
import json
import threading

import pytest
from django.db import connection
from PIL import Image
from rest_framework.test import APIClient

from inspection.enums import AutomationLevel
from inspection.models import Prediction
from inspection.services.decisions import HumanRegion, decision_record
from inspection.services.units import unit_submit
from labeling.formats.services import dataset_export
from labeling.models import (
    Annotation,
    AnnotationKind,
    DatasetItem,
    LabelSubmission,
    LabelTask,
    SubmissionStatus,
    TaskStatus,
    TaskTier,
)
from labeling.selectors import item_sample
from labeling.snapshots import dataset_snapshot_create, snapshot_samples
from labeling.station_data import label_draw, station_dataset_get
from labeling.work import (
    LabelConflict,
    LabelRejected,
    Shape,
    label_queue_stats,
    label_submit,
    label_task_claim_next,
    review_accept,
    review_claim_next,
    review_fix,
    review_reject,
)
from tests.inspection.factories import jpeg_bytes, person

pytestmark = pytest.mark.django_db

BOX = Shape("box", "crack", {"x": 10, "y": 20, "width": 30, "height": 15})


def _unit(station, serial: str, seed: int = 0):
    return unit_submit(
        station=station, serial=serial, image_data=jpeg_bytes(seed), filename=f"{serial}.jpg"
    ).unit


def _set_margin(unit, probability: float) -> None:
    """Pin the champion's defect probability (and so its margin and verdict) for a unit."""
    Prediction.objects.filter(unit=unit).update(
        defect_probability=probability, verdict="fail" if probability >= 0.5 else "pass"
    )


@pytest.fixture
def assisted(make_station):
    return make_station(slug="screens-1", level=AutomationLevel.ASSISTED, defect_classes=["crack", "scratch"])


@pytest.fixture
def labelers():
    return person("lea", role="labeler"), person("rui", role="labeler")


def _decided(station, serial: str, verdict: str, *, probability: float, seed: int = 0, **kwargs):
    unit = _unit(station, serial, seed)
    _set_margin(unit, probability)
    decision_record(unit=unit, user=person(f"insp-{serial}"), verdict=verdict, **kwargs)
    return unit


def _task_of(unit) -> LabelTask:
    return LabelTask.objects.get(item__unit=unit)


# -- verdicts become labels -------------------------------------------------------------------------


def test_an_inspector_verdict_is_the_items_label_at_once(assisted):
    unit = _decided(assisted, "SN-1", "fail", probability=0.9, regions=[HumanRegion(5, 6, 20, 10, "crack")])
    item = DatasetItem.objects.get(unit=unit)
    assert item.dataset == station_dataset_get(station=assisted)
    assert item.image.file.name == unit.image.name  # the unit's file, not a copy
    sample = item_sample(item)
    assert sample.defective is True
    assert sample.classes == ("crack",)
    assert [(b.x, b.y, b.width, b.height) for b in sample.boxes] == [(5, 6, 20, 10)]
    assert item.labelled_at is not None


def test_an_override_replaces_the_verdicts_label_but_not_an_accepted_one(assisted, labelers):
    unit = _decided(assisted, "SN-1", "fail", probability=0.9, defect_classes=["scratch"])
    inspector = person("ines")
    decision_record(unit=unit, user=inspector, verdict="pass")
    item = DatasetItem.objects.get(unit=unit)
    assert item_sample(item).defective is False
    assert Annotation.objects.filter(item=item).count() == 2  # the first verdict's row is kept, inactive

    lea, rui = labelers
    submission = label_submit(task=_task_of(unit), user=lea, shapes=[BOX])
    review_accept(submission=submission, user=rui)
    decision_record(unit=unit, user=inspector, verdict="pass")
    assert item_sample(DatasetItem.objects.get(unit=unit)).classes == ("crack",)


def test_the_model_alone_makes_a_task_only_when_uncertain_or_in_the_random_slice(
    make_station, make_model_version, settings
):
    champion = make_model_version()
    settings.LOUPE_LABEL_UNCERTAIN_MARGIN = 2.0  # every margin is under it: all uncertain
    uncertain = make_station(slug="all-uncertain", label_random_share=0.0, champion=champion)
    unit = _unit(uncertain, "SN-1")
    task = _task_of(unit)
    assert (task.tier, task.random_slice) == (TaskTier.UNCERTAIN, False)
    assert not item_sample(task.item).defective  # no label yet: the model's verdict is not one
    assert item_sample(task.item).defective is None

    settings.LOUPE_LABEL_UNCERTAIN_MARGIN = -1.0  # never uncertain
    confident = make_station(slug="confident", label_random_share=0.0, champion=champion)
    _unit(confident, "SN-1")
    assert not LabelTask.objects.filter(station=confident).exists()
    assert not DatasetItem.objects.filter(unit__station=confident).exists()

    sliced = make_station(slug="sliced", label_random_share=0.5, champion=champion)
    serials = [f"SN-{i}" for i in range(12)]
    for index, serial in enumerate(serials):
        _unit(sliced, serial, seed=index)
    expected = {s for s in serials if label_draw("sliced", s) < 0.5}
    assert 0 < len(expected) < len(serials)
    got = set(LabelTask.objects.filter(station=sliced).values_list("item__unit__serial", flat=True))
    assert got == expected
    assert set(LabelTask.objects.filter(station=sliced).values_list("tier", "random_slice")) == {
        (TaskTier.RANDOM, True)
    }


# -- the queue ----------------------------------------------------------------------------------------


def test_the_queue_serves_disagreements_then_deferrals_then_the_smallest_margin(
    make_station, make_model_version, labelers
):
    station = make_station(slug="mixed", level=AutomationLevel.ASSISTED, defect_classes=["crack"])
    confident = _decided(station, "confident", "pass", probability=0.02, seed=1)  # margin 0.96
    unsure = _decided(station, "unsure", "pass", probability=0.4, seed=2)  # margin 0.2
    disagreed = _decided(station, "disagreed", "fail", probability=0.1, seed=3)  # model said pass
    uncertified = make_model_version(name="uncertified", threshold=None)
    station.automation_level = AutomationLevel.PARTIAL
    station.champion = uncertified
    station.save()
    deferred = _unit(station, "deferred", seed=4)
    assert deferred.queue_reason == "deferred"
    _set_margin(deferred, 0.01)
    decision_record(unit=deferred, user=person("ines"), verdict="pass")

    lea, _ = labelers
    order = []
    while (
        task := label_task_claim_next(station=station, user=lea, exclude=order, draw=lambda: 1.0)
    ) is not None:
        order.append(task.pk)
    assert order == [_task_of(u).pk for u in (disagreed, deferred, unsure, confident)]
    stats = label_queue_stats(station=station)
    assert stats.open == 4
    assert stats.open_by_tier == {TaskTier.DISAGREEMENT: 1, TaskTier.DEFERRED: 1, TaskTier.UNCERTAIN: 2}


def test_the_random_slice_is_served_at_the_stations_share(make_station, settings, labelers):
    station = make_station(slug="sliced", level=AutomationLevel.ASSISTED, label_random_share=0.5)
    useful = _decided(station, "useful", "fail", probability=0.1, defect_classes=[])
    random_unit = None
    for index in range(40):  # the model decides alone; find a unit in the random slice
        station.automation_level = AutomationLevel.FULL
        station.save()
        candidate = _unit(station, f"auto-{index}", seed=index)
        if LabelTask.objects.filter(item__unit=candidate, random_slice=True).exists():
            random_unit = candidate
            break
    assert random_unit is not None
    lea, _ = labelers
    assert label_task_claim_next(station=station, user=lea, draw=lambda: 0.9).item.unit == useful
    rui = labelers[1]
    assert label_task_claim_next(station=station, user=rui, draw=lambda: 0.1).item.unit == random_unit


def test_claims_are_exclusive_and_expire(assisted, labelers, settings):
    for index in range(2):
        _decided(assisted, f"SN-{index}", "pass", probability=0.3, seed=index)
    lea, rui = labelers
    first = label_task_claim_next(station=assisted, user=lea)
    second = label_task_claim_next(station=assisted, user=rui)
    assert first.pk != second.pk
    assert label_task_claim_next(station=assisted, user=person("third", role="labeler")) is None
    assert label_task_claim_next(station=assisted, user=lea).pk == first.pk  # a reload gets it back
    with pytest.raises(LabelConflict, match="being labelled by lea"):
        label_submit(task=first, user=rui, shapes=[BOX])
    LabelTask.objects.filter(pk=first.pk).update(claim_expires_at="2000-01-01T00:00:00Z")
    assert label_task_claim_next(station=assisted, user=person("third2", role="labeler")).pk == first.pk


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_hand_out_a_task_twice(assisted):
    if connection.vendor != "postgresql":
        pytest.skip("row locks with SKIP LOCKED are PostgreSQL's; SQLite serializes claims")
    for index in range(8):
        _decided(assisted, f"SN-{index}", "pass", probability=0.3, seed=index)
    people = [person(f"labeler-{i}", role="labeler") for i in range(4)]
    claimed: list[int] = []
    lock = threading.Lock()

    def work(user):
        try:
            while (task := label_task_claim_next(station=assisted, user=user)) is not None:
                with lock:
                    claimed.append(task.pk)
                label_submit(task=task, user=user, no_defect=True)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(p,)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(LabelTask.objects.values_list("pk", flat=True))
    assert LabelSubmission.objects.count() == 8


# -- submissions and their checks ----------------------------------------------------------------------


def _mask_png(size: tuple[int, int], painted: bool = True, mode: str = "L") -> bytes:
    image = Image.new(mode, size, 0)
    if painted:
        image.paste(255 if mode == "L" else (255, 0, 0, 255), (10, 10, 40, 30))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("shapes", "no_defect", "message"),
    [
        ([], False, "draw at least one defect region"),
        ([BOX], True, "'no defect' label has no shapes"),
        ([Shape("box", "dent", BOX.geometry)], False, "unknown defect class 'dent'"),
        ([Shape("box", "crack", {"x": 300, "y": 0, "width": 50, "height": 5})], False, "outside the 320x180"),
        ([Shape("box", "crack", {"x": 1, "y": 1, "width": 0, "height": 5})], False, "positive width"),
        ([Shape("box", "crack", {"x": 1})], False, "needs numbers x, y, width and height"),
        ([Shape("polygon", "crack", {"points": [[1, 1], [5, 5]]})], False, "3 to 2000 points, not 2"),
        (
            [Shape("polygon", "crack", {"points": [[1, 1], [5, 5], [999, 5]]})],
            False,
            "polygon point lies outside",
        ),
        ([Shape("mask", "crack", {}, _mask_png((100, 100)))], False, "the image's size 320x180, not 100x100"),
        ([Shape("mask", "crack", {}, _mask_png((320, 180), painted=False))], False, "mask is empty"),
        ([Shape("mask", "crack", {}, b"not a png")], False, "could not be read as PNG"),
        ([Shape("circle", "crack", {})], False, "kind must be box, polygon, mask or class"),
        ([Shape("class", "crack", BOX.geometry)], False, "whole-image class has no geometry"),
        ([Shape("class", "crack"), Shape("class", "crack")], False, "given as the whole image's class twice"),
        ([BOX, Shape("class", "dent")], False, "shape 2 \\(class\\): unknown defect class 'dent'"),
    ],
)
def test_a_bad_label_is_refused_with_its_reason_and_leaves_nothing(
    assisted, labelers, shapes, no_defect, message
):
    unit = _decided(assisted, "SN-1", "fail", probability=0.9)
    task = _task_of(unit)
    before = Annotation.objects.count()
    with pytest.raises(LabelRejected, match=message):
        label_submit(task=task, user=labelers[0], shapes=shapes, no_defect=no_defect)
    assert Annotation.objects.count() == before
    assert not LabelSubmission.objects.exists()
    task.refresh_from_db()
    assert task.status == TaskStatus.OPEN


def test_a_submission_trains_only_once_accepted(assisted, labelers):
    unit = _decided(assisted, "SN-1", "fail", probability=0.9, defect_classes=["scratch"])
    lea, rui = labelers
    polygon = Shape("polygon", "crack", {"points": [[10, 10], [60, 12], [30, 50]]})
    mask = Shape("mask", "scratch", {}, _mask_png((320, 180), mode="RGBA"))
    submission = label_submit(task=_task_of(unit), user=lea, shapes=[BOX, polygon, mask])
    item = DatasetItem.objects.get(unit=unit)
    assert item_sample(item).classes == ("scratch",)  # still the inspector's verdict
    assert _task_of(unit).status == TaskStatus.IN_REVIEW
    pending_snapshot = dataset_snapshot_create(dataset=item.dataset)
    assert snapshot_samples(snapshot=pending_snapshot)[0].boxes == ()

    with pytest.raises(LabelRejected, match="someone other than its author"):
        review_accept(submission=submission, user=lea)
    assert review_claim_next(station=assisted, user=lea) is None  # never offered one's own label
    assert review_claim_next(station=assisted, user=rui).pk == submission.pk
    review_accept(submission=submission, user=rui)
    with pytest.raises(LabelConflict, match="reviewed already"):
        review_accept(submission=submission, user=person("third", role="labeler"))

    sample = item_sample(DatasetItem.objects.get(unit=unit))
    assert sample.classes == ("crack", "scratch")
    assert len(sample.boxes) == 1 and len(sample.polygons) == 1 and len(sample.mask_paths) == 1
    stored = Image.open(sample.mask_paths[0][1])
    assert stored.size == (320, 180) and stored.getbbox() == (10, 10, 40, 30)
    assert _task_of(unit).status == TaskStatus.DONE
    accepted_snapshot = dataset_snapshot_create(dataset=item.dataset)
    assert accepted_snapshot.version == pending_snapshot.version + 1
    assert len(snapshot_samples(snapshot=accepted_snapshot)[0].boxes) == 1
    assert snapshot_samples(snapshot=pending_snapshot)[0].boxes == ()  # the old snapshot reads the same


def test_a_rejection_needs_a_comment_and_sends_the_task_back(assisted, labelers):
    unit = _decided(assisted, "SN-1", "fail", probability=0.9)
    lea, rui = labelers
    submission = label_submit(task=_task_of(unit), user=lea, shapes=[BOX])
    with pytest.raises(LabelRejected, match="needs a comment"):
        review_reject(submission=submission, user=rui, comment="  ")
    review_reject(submission=submission, user=rui, comment="the crack runs further left")
    submission.refresh_from_db()
    assert (submission.status, submission.reviewer) == (SubmissionStatus.REJECTED, rui)
    task = label_task_claim_next(station=assisted, user=lea)
    assert task.pk == _task_of(unit).pk and task.feedback == "the crack runs further left"
    assert not Annotation.objects.filter(submission=submission, active=True).exists()


def test_a_fix_is_accepted_in_place_of_the_original(assisted, labelers):
    unit = _decided(assisted, "SN-1", "fail", probability=0.9)
    lea, rui = labelers
    submission = label_submit(task=_task_of(unit), user=lea, shapes=[BOX])
    fixed = review_fix(submission=submission, user=rui, shapes=[Shape("box", "scratch", BOX.geometry)])
    submission.refresh_from_db()
    assert submission.status == SubmissionStatus.FIXED
    assert (fixed.status, fixed.fixes, fixed.author) == (SubmissionStatus.ACCEPTED, submission, rui)
    assert item_sample(DatasetItem.objects.get(unit=unit)).classes == ("scratch",)


# -- the API -------------------------------------------------------------------------------------------


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_api_claims_submits_and_reviews(assisted, labelers):
    _decided(assisted, "SN-1", "fail", probability=0.1, defect_classes=["crack"])
    lea, rui = labelers
    claimed = _client(lea).post("/api/v1/labeling/stations/screens-1/tasks/claim/", {}, format="json")
    assert claimed.status_code == 200
    task = claimed.json()
    assert task["why"] == "human and model disagree"
    assert task["classes"] == ["crack", "scratch"]
    assert [a["kind"] for a in task["current"]] == [AnnotationKind.IMAGE_CLASS]
    assert task["model"]["verdict"] == "pass"
    assert _client(lea).get(task["image_url"]).status_code == 200

    mask = "data:image/png;base64," + base64.b64encode(_mask_png((320, 180))).decode()
    refused = _client(lea).post(
        f"/api/v1/labeling/tasks/{task['id']}/submissions/",
        {"shapes": [{"kind": "mask", "label": "crack", "mask": "@@@"}]},
        format="json",
    )
    assert refused.status_code == 400 and "base64" in refused.content.decode()
    bad = _client(lea).post(
        f"/api/v1/labeling/tasks/{task['id']}/submissions/",
        {"shapes": [{"kind": "box", "label": "dent", "geometry": BOX.geometry}]},
        format="json",
    )
    assert bad.status_code == 400 and "unknown defect class 'dent'" in bad.json()["detail"]
    made = _client(lea).post(
        f"/api/v1/labeling/tasks/{task['id']}/submissions/",
        {
            "shapes": [
                {"kind": "mask", "label": "crack", "mask": mask},
                {"kind": "box", "label": "crack", "geometry": BOX.geometry},
            ]
        },
        format="json",
    )
    assert made.status_code == 201, made.content
    again = _client(lea).post(
        f"/api/v1/labeling/tasks/{task['id']}/submissions/", {"no_defect": True}, format="json"
    )
    assert again.status_code == 409

    review = _client(rui).post("/api/v1/labeling/stations/screens-1/reviews/claim/", {}, format="json")
    assert review.status_code == 200
    body = review.json()
    assert body["author"] == "lea" and [a["kind"] for a in body["annotations"]] == ["mask", "box"]
    assert _client(rui).get(body["annotations"][0]["mask_url"]).status_code == 200
    assert (
        _client(rui)
        .post(f"/api/v1/labeling/submissions/{body['id']}/review/", {"action": "reject"}, format="json")
        .status_code
        == 400
    )
    done = _client(rui).post(
        f"/api/v1/labeling/submissions/{body['id']}/review/", {"action": "accept"}, format="json"
    )
    assert done.json() == {"id": body["id"], "status": "accepted"}
    figures = _client(rui).get("/api/v1/labeling/stations/screens-1/figures/").json()
    assert figures == {"open": 0, "open_by_reason": {}, "random_slice_open": 0, "in_review": 0, "done": 1}
    assert (
        _client(rui).post("/api/v1/labeling/stations/screens-1/tasks/claim/", {}, format="json").status_code
        == 204
    )


def test_an_image_level_class_is_a_label_without_regions_through_the_api_and_the_export(
    assisted, labelers, tmp_path
):
    """ "scratch, whole image": sent as a shape of kind "class", stored as an image-level
    annotation, shown to the reviewer as such, training as the item's class once accepted, and
    exported as a Label Studio choice (no region)."""
    unit = _decided(assisted, "SN-1", "fail", probability=0.1, defect_classes=["crack"])
    lea, rui = labelers
    task = _client(lea).post("/api/v1/labeling/stations/screens-1/tasks/claim/", {}, format="json").json()
    url = f"/api/v1/labeling/tasks/{task['id']}/submissions/"
    refused = _client(lea).post(
        url, {"shapes": [{"kind": "class", "label": "scratch", "geometry": {"x": 1}}]}, format="json"
    )
    assert refused.status_code == 400 and "no geometry" in refused.json()["detail"]
    assert not LabelSubmission.objects.exists()
    made = _client(lea).post(url, {"shapes": [{"kind": "class", "label": "scratch"}]}, format="json")
    assert made.status_code == 201, made.content

    body = _client(rui).post("/api/v1/labeling/stations/screens-1/reviews/claim/", {}, format="json").json()
    assert body["no_defect"] is False
    assert [(a["kind"], a["label"], a.get("geometry")) for a in body["annotations"]] == [
        ("class", "scratch", None)
    ]
    done = _client(rui).post(
        f"/api/v1/labeling/submissions/{body['id']}/review/", {"action": "accept"}, format="json"
    )
    assert done.json()["status"] == "accepted"
    item = DatasetItem.objects.get(unit=unit)
    sample = item_sample(item)
    assert sample.classes == ("scratch",) and sample.boxes == () and sample.polygons == ()

    dataset_export(dataset=item.dataset, format="labelstudio", out=tmp_path / "out")
    (exported,) = json.loads((tmp_path / "out" / "tasks.json").read_text())
    results = exported["annotations"][0]["result"]
    assert [(r["type"], r["value"]) for r in results] == [("choices", {"choices": ["scratch"]})]


def test_the_api_gives_tasks_and_reviews_back_only_for_their_claimant(assisted, labelers):
    _decided(assisted, "SN-1", "fail", probability=0.1, defect_classes=["crack"])
    lea, rui = labelers
    task = _client(lea).post("/api/v1/labeling/stations/screens-1/tasks/claim/", {}, format="json").json()
    release = f"/api/v1/labeling/tasks/{task['id']}/release/"
    refused = _client(rui).post(release)
    assert refused.status_code == 400
    assert refused.json() == {"detail": f"task {task['id']} is not open and claimed by you"}
    assert _client(rui).post("/api/v1/labeling/tasks/999999/release/").status_code == 404
    given_back = _client(lea).post(release)
    assert given_back.status_code == 204 and not given_back.content
    assert (
        _client(rui).post("/api/v1/labeling/stations/nowhere/tasks/claim/", {}, format="json").status_code
        == 404
    )

    claimed = _client(rui).post("/api/v1/labeling/stations/screens-1/tasks/claim/", {}, format="json")
    assert claimed.json()["id"] == task["id"]
    made = _client(rui).post(
        f"/api/v1/labeling/tasks/{task['id']}/submissions/", {"no_defect": True}, format="json"
    )
    submission = made.json()["id"]
    assert (
        _client(rui).post("/api/v1/labeling/stations/screens-1/reviews/claim/", {}, format="json").status_code
        == 204
    )
    review = _client(lea).post("/api/v1/labeling/stations/screens-1/reviews/claim/", {}, format="json")
    assert review.json()["id"] == submission
    release = f"/api/v1/labeling/submissions/{submission}/release/"
    refused = _client(rui).post(release)
    assert refused.status_code == 400
    assert refused.json() == {"detail": f"submission {submission} is not waiting and claimed by you"}
    assert _client(lea).post(release).status_code == 204
    assert _client(lea).post(release).status_code == 400  # nothing left to give back


def test_labeling_needs_the_labeler_role(assisted, device_client):
    inspector = person("ines")
    for url in (
        "/api/v1/labeling/stations/screens-1/tasks/claim/",
        "/api/v1/labeling/stations/screens-1/reviews/claim/",
    ):
        assert _client(inspector).post(url, {}, format="json").status_code == 403
        assert device_client(assisted).post(url, {}, format="json").status_code == 403
        assert APIClient().post(url, {}, format="json").status_code in (401, 403)
    supervisor = person("sam", role="supervisor")
    assert _client(supervisor).get("/api/v1/labeling/stations/screens-1/figures/").status_code == 200


def test_an_imported_data_set_linked_to_a_station_collects_its_verdicts(make_station, tmp_path):
    from labeling.models import Dataset
    from labeling.station_data import station_dataset_link

    imported = Dataset.objects.create(name="screens-imported", classes=["scratch"])
    station = make_station(slug="linked", level=AutomationLevel.ASSISTED, defect_classes=["crack", "scratch"])
    station_dataset_link(station=station, dataset=imported)
    assert imported.classes == ["scratch", "crack"]  # the station's classes are added after its own
    with pytest.raises(ValueError, match="already has a data set"):
        station_dataset_link(station=station, dataset=Dataset.objects.create(name="other"))
    unit = _decided(station, "SN-1", "pass", probability=0.2)
    assert DatasetItem.objects.get(unit=unit).dataset == imported
