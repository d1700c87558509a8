"""The line API: submitting units at each automation level, idempotency, long-poll, scoping."""

import threading
import time

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from inspection.enums import PredictionRole, RolloutMode, UnitStatus
from inspection.models import DecisionEvent, Disagreement, Prediction, Unit
from inspection.services.decisions import decision_record
from tests.inspection.factories import jpeg_bytes, person, upload
from tests.openapi import openapi_document, response_schema, schema_errors

pytestmark = pytest.mark.django_db

UNITS = "/api/v1/units/"


def post_unit(client: APIClient, serial: str = "SN-1", seed: int = 0, **extra):
    data = {"image": upload(jpeg_bytes(seed)), "serial": serial}
    data.update(extra.pop("data", {}))
    return client.post(UNITS, data, format="multipart", **extra)


def test_full_automation_decides_and_stores_everything(make_station, device_client, media_root):
    # given a station at full automation without audits
    station = make_station(level="full")
    client = device_client(station)
    # when the line posts a unit
    response = post_unit(
        client, data={"captured_at": "2026-11-21T08:00:00Z", "metadata": '{"shift": "A", "lot": 7}'}
    )
    # then the model's decision comes back at once
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "decided" and body["decided_by"] == "model"
    assert body["decision"] in ("pass", "fail")
    assert body["station"] == station.slug and body["serial"] == "SN-1"
    assert body["model_version"] == "tiny:1" and body["automation_level"] == "full"
    assert 0.0 <= body["score"] <= 1.0 and isinstance(body["regions"], list)
    assert response["Location"] == body["url"] == f"/api/v1/units/{body['id']}/"
    # and the unit, its image, the prediction and the decision event are stored
    unit = Unit.objects.get(pk=body["id"])
    assert unit.metadata == {"shift": "A", "lot": 7} and unit.captured_at.hour == 8
    assert (media_root / unit.image.name).read_bytes()[:2] == b"\xff\xd8"
    prediction = Prediction.objects.get(unit=unit)
    assert prediction.role == PredictionRole.CHAMPION and prediction.latency_ms > 0
    event = DecisionEvent.objects.get(unit=unit)
    assert event.reason == "automatic" and event.decided_by_model == station.champion
    assert event.verdict == body["decision"] == prediction.verdict
    assert event.policy["level"] == "full" and event.policy["model_version"] == "tiny:1"


@pytest.mark.parametrize(
    "level, threshold, station_settings, status, queue_reason, blind, predicted",
    [
        ("human", 0.0, {}, "pending", "human", True, False),
        ("shadow", 0.0, {}, "pending", "shadow", True, True),
        ("assisted", 0.0, {}, "pending", "assisted", False, True),
        ("partial", 0.0, {}, "decided", None, False, True),  # always confident enough
        ("partial", None, {}, "pending", "deferred", False, True),  # nothing certified
        # a band of 0.3 still decides: the surest of three outcomes is at least 1/3 likely
        ("partial", 0.0, {"uncertainty_band": 0.3}, "decided", None, False, True),
        ("full", None, {"audit_share": 1.0}, "pending", "audit", True, True),
        ("full", None, {"audit_share": 0.0}, "decided", None, False, True),
    ],
)
def test_each_level_decides_or_queues(
    make_station,
    make_model_version,
    device_client,
    level,
    threshold,
    station_settings,
    status,
    queue_reason,
    blind,
    predicted,
):
    station = make_station(level=level, champion=make_model_version(threshold=threshold), **station_settings)
    response = post_unit(device_client(station))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == status
    assert body.get("queue_reason") == queue_reason
    # blind levels never show the model's score or regions
    assert ("score" in body) is not blind and ("regions" in body) is not blind
    assert Prediction.objects.filter(unit_id=body["id"]).exists() is predicted
    assert DecisionEvent.objects.filter(unit_id=body["id"]).exists() is (status == "decided")


def test_partial_with_a_high_band_defers_and_shows_the_model(make_station, make_model_version, device_client):
    # a certified threshold of 0.6 plus a band of 0.45 asks for confidence >= 1.05: never reached
    station = make_station(level="partial", champion=make_model_version(threshold=0.6), uncertainty_band=0.45)
    body = post_unit(device_client(station)).json()
    assert body["status"] == "pending" and body["queue_reason"] == "deferred"
    assert "score" in body
    assert Unit.objects.get(pk=body["id"]).routing["required_confidence"] == 1.0


def test_canary_share_is_decided_by_the_challenger(make_station, make_model_version, device_client):
    station = make_station(level="full")
    station.challenger = make_model_version(version=2)
    station.rollout_mode = RolloutMode.CANARY
    station.canary_share = 1.0
    station.save()
    body = post_unit(device_client(station)).json()
    assert body["model_version"] == "tiny:2"
    prediction = Prediction.objects.get(unit_id=body["id"])
    assert prediction.role == PredictionRole.CANARY
    assert DecisionEvent.objects.get(unit_id=body["id"]).decided_by_model == station.challenger


def test_a_model_that_cannot_load_sends_units_to_humans(
    make_station, make_model_version, device_client, settings
):
    # given a champion whose bundle is missing from the cache and from MLflow
    broken = make_model_version(name="missing", version=9)
    import shutil

    shutil.rmtree(settings.LOUPE_MODEL_CACHE / "missing")
    station = make_station(level="full", champion=broken)
    # when a unit arrives, it is kept and queued for a person, never decided without a prediction
    response = post_unit(device_client(station))
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending" and body["queue_reason"] == "no_model"
    assert Unit.objects.count() == 1


def test_a_repeated_idempotency_key_returns_the_first_response(make_station, device_client):
    station = make_station(level="full")
    client = device_client(station)
    metadata = {"data": {"metadata": '{"lot": 7, "shift": "b"}'}}
    first = post_unit(client, HTTP_IDEMPOTENCY_KEY="line-7-0001", **metadata)
    # the same body again, its metadata's keys in another order
    again = post_unit(
        client, HTTP_IDEMPOTENCY_KEY="line-7-0001", data={"metadata": '{"shift": "b", "lot": 7}'}
    )
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Unit.objects.count() == 1 and Prediction.objects.count() == 1


@pytest.mark.parametrize(
    "retry, differs, message",
    [
        ({"seed": 5, "data": {"metadata": '{"lot": 7}'}}, ["image"], "with another image (sha256 "),
        ({"data": {"metadata": '{"lot": 8}'}}, ["metadata"], "with other metadata"),
        ({"seed": 5, "data": {"metadata": "{}"}}, ["image", "metadata"], "another image (sha256"),
    ],
    ids=["image", "metadata", "both"],
)
def test_an_idempotency_key_reused_with_another_body_is_a_422(
    make_station, device_client, media_root, retry, differs, message
):
    # given a unit posted under a key
    client = device_client(make_station(level="full"))
    first = post_unit(client, HTTP_IDEMPOTENCY_KEY="k1", data={"metadata": '{"lot": 7}'})
    assert first.status_code == 201
    stored = sorted(path for path in media_root.rglob("*") if path.is_file())
    # when a retry under the same key and serial carries another image or other metadata
    response = post_unit(client, HTTP_IDEMPOTENCY_KEY="k1", **retry)
    # then it is refused naming the difference, and nothing of it is kept
    assert response.status_code == 422, response.content
    assert response.json()["differs"] == differs
    assert message in response.json()["detail"] and "SN-1" in response.json()["detail"]
    assert "Idempotent-Replayed" not in response
    assert Unit.objects.count() == 1 and Unit.objects.get().metadata == {"lot": 7}
    assert sorted(path for path in media_root.rglob("*") if path.is_file()) == stored
    document = openapi_document()
    assert schema_errors(document, response_schema(document, UNITS, "post", "422"), response.json()) == []


def test_an_idempotency_key_reused_for_another_serial_is_a_conflict(make_station, device_client):
    client = device_client(make_station(level="full"))
    post_unit(client, serial="SN-1", HTTP_IDEMPOTENCY_KEY="k1")
    response = post_unit(client, serial="SN-2", HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 409
    assert "SN-1" in response.json()["detail"]
    assert Unit.objects.count() == 1


def test_idempotency_keys_are_per_station(make_station, make_model_version, device_client):
    one = device_client(make_station(slug="one", level="full"))
    two = device_client(make_station(slug="two", level="full", champion=make_model_version(version=2)))
    post_unit(one, HTTP_IDEMPOTENCY_KEY="same")
    assert post_unit(two, HTTP_IDEMPOTENCY_KEY="same").status_code == 201
    assert Unit.objects.count() == 2


def test_get_returns_the_current_decision(make_station, device_client):
    client = device_client(make_station(level="full"))
    posted = post_unit(client).json()
    response = client.get(posted["url"])
    assert response.status_code == 200
    assert response.json()["decision"] == posted["decision"]


def test_long_poll_times_out_on_a_pending_unit(make_station, device_client):
    client = device_client(make_station(level="assisted"))
    posted = post_unit(client).json()
    started = time.monotonic()
    response = client.get(posted["url"], {"wait": "0.5"})
    assert response.status_code == 200 and response.json()["status"] == "pending"
    assert time.monotonic() - started >= 0.5


@pytest.mark.django_db(transaction=True)
def test_long_poll_returns_as_soon_as_a_person_decides(make_station, device_client, redis_client):
    # given a pending unit and an inspector who decides it half a second later, elsewhere
    client = device_client(make_station(level="assisted"))
    posted = post_unit(client).json()
    inspector = User.objects.create_user("ines")

    def decide_later() -> None:
        time.sleep(0.5)
        decision_record(unit=Unit.objects.get(pk=posted["id"]), user=inspector, verdict="pass")

    thread = threading.Thread(target=decide_later)
    thread.start()
    # when the line long-polls for up to 10 s
    started = time.monotonic()
    response = client.get(posted["url"], {"wait": "10"})
    waited = time.monotonic() - started
    thread.join()
    # then the answer comes with the decision, well before the 10 s are up
    body = response.json()
    assert body["status"] == "decided" and body["decision"] == "pass" and body["decided_by"] == "human"
    assert waited < 5


@pytest.mark.parametrize("wait", ["-1", "31", "soon"])
def test_a_bad_wait_is_a_clear_400(make_station, device_client, wait):
    client = device_client(make_station(level="assisted"))
    posted = post_unit(client).json()
    response = client.get(posted["url"], {"wait": wait})
    assert response.status_code == 400
    assert "wait" in response.json()


def test_a_key_sees_only_its_stations_units(make_station, make_model_version, device_client):
    one = device_client(make_station(slug="one", level="full"))
    two = device_client(make_station(slug="two", level="full", champion=make_model_version(version=2)))
    mine = post_unit(one, serial="A").json()
    theirs = post_unit(two, serial="B").json()
    # another station's unit does not exist for this key
    response = one.get(theirs["url"])
    assert response.status_code == 404 and "at station one" in response.json()["detail"]
    listed = one.get(UNITS).json()["results"]
    assert [unit["id"] for unit in listed] == [mine["id"]]
    pending = one.get(UNITS, {"status": "pending"}).json()["results"]
    assert pending == []


def test_a_person_posting_units_is_refused(make_station, client):
    make_station()
    user = User.objects.create_user("ines")
    client.force_login(user)
    response = client.post(UNITS, {"image": upload(jpeg_bytes()), "serial": "S"})
    assert response.status_code == 403
    assert "device key" in response.json()["detail"]


def inspector_client(name: str = "ines") -> tuple[APIClient, User]:
    user = person(name)
    client = APIClient()
    client.force_authenticate(user)
    return client, user


def test_an_inspector_decides_a_pending_unit_and_disagreements_are_logged(make_station, device_client):
    # given a shadow-mode unit (the model predicted blind)
    station = make_station(level="shadow")
    posted = post_unit(device_client(station)).json()
    prediction = Prediction.objects.get(unit_id=posted["id"])
    opposite = "pass" if prediction.verdict == "fail" else "fail"
    client, user = inspector_client()
    # when the inspector gives the opposite verdict
    payload = {"verdict": opposite}
    if opposite == "fail":
        payload |= {
            "defect_classes": ["crack"],
            "regions": [{"x": 1, "y": 1, "width": 20, "height": 10, "label": "crack"}],
        }
    response = client.post(f"{posted['url']}decision/", payload, format="json")
    # then the unit is decided by a human, and the image-level disagreement is recorded
    assert response.status_code == 201, response.content
    assert response.json()["decided_by"] == "human" and response.json()["decision"] == opposite
    event = DecisionEvent.objects.get(unit_id=posted["id"])
    assert event.reason == "human" and event.decided_by_user == user
    assert event.policy["level"] == "shadow"
    disagreement = Disagreement.objects.get(unit_id=posted["id"], kind="image")
    assert (disagreement.human_verdict, disagreement.model_verdict) == (opposite, prediction.verdict)
    # and a second verdict is an override, never an edit of the first
    client.post(f"{posted['url']}decision/", {"verdict": "pass"}, format="json")
    reasons = list(DecisionEvent.objects.filter(unit_id=posted["id"]).values_list("reason", flat=True))
    assert reasons == ["human", "override"]


def test_deciding_needs_the_inspector_role(make_station, device_client):
    device = device_client(make_station(level="assisted"))
    posted = post_unit(device).json()
    # a device key cannot decide
    assert device.post(f"{posted['url']}decision/", {"verdict": "pass"}, format="json").status_code == 403
    # nor can a signed-in person without the role
    client = APIClient()
    client.force_authenticate(User.objects.create_user("visitor"))
    assert client.post(f"{posted['url']}decision/", {"verdict": "pass"}, format="json").status_code == 403
    assert Unit.objects.get(pk=posted["id"]).status == UnitStatus.PENDING


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"verdict": "maybe"}, "verdict"),
        ({"verdict": "fail", "defect_classes": ["dent"]}, "unknown defect class dent"),
        ({"verdict": "pass", "defect_classes": ["crack"]}, "a pass has no defect"),
        (
            {"verdict": "fail", "regions": [{"x": 300, "y": 0, "width": 50, "height": 10, "label": "crack"}]},
            "outside",
        ),
    ],
)
def test_a_bad_decision_is_a_clear_400_and_records_nothing(make_station, device_client, payload, message):
    posted = post_unit(device_client(make_station(level="assisted"))).json()
    client, _ = inspector_client()
    response = client.post(f"{posted['url']}decision/", payload, format="json")
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not DecisionEvent.objects.filter(unit_id=posted["id"]).exists()


def test_the_openapi_schema_generates_without_warnings():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out, stderr=StringIO())
    assert "deviceKey" in out.getvalue() and "/api/v1/units/{id}/image" in out.getvalue()


def test_the_openapi_schema_and_docs_describe_the_line_api(client):
    schema = client.get("/api/v1/schema/", {"format": "json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/api/v1/units/", "/api/v1/units/{id}/", "/api/v1/units/{id}/decision/"} <= set(paths)
    components = schema.json()["components"]["schemas"]
    # the list is paginated by cursor, and says so
    listed = paths["/api/v1/units/"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed == {"$ref": "#/components/schemas/UnitPage"}
    assert set(components["UnitPage"]["properties"]) == {"next", "previous", "results"}
    # what the station's webhook receives
    webhook = schema.json()["webhooks"]["unit.decided"]["post"]
    body = webhook["requestBody"]["content"]["application/json"]["schema"]
    assert set(components[body["$ref"].rsplit("/", 1)[1]]["properties"]) == {"event", "decision_id", "unit"}
    assert (
        "X-Loupe-Signature: sha256=" in webhook["description"]
        and "X-Loupe-Delivery" in webhook["description"]
    )
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200 and b"redoc" in docs.content.lower()


def test_the_image_is_served_to_its_station_and_to_people_with_a_role(
    make_station, make_model_version, device_client
):
    image = jpeg_bytes(3)
    line = device_client(make_station(slug="one", level="full"))
    posted = line.post(UNITS, {"image": upload(image), "serial": "S"}, format="multipart").json()
    # the line's own key
    response = line.get(posted["image_url"])
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content) == image
    # another station's key: no such unit
    other = device_client(make_station(slug="two", level="full", champion=make_model_version(version=2)))
    assert other.get(posted["image_url"]).status_code == 404
    # an inspector may, a signed-in person without a role may not
    inspector, _ = inspector_client()
    assert inspector.get(posted["image_url"]).status_code == 200
    visitor = APIClient()
    visitor.force_authenticate(User.objects.create_user("visitor"))
    assert visitor.get(posted["image_url"]).status_code == 403


@pytest.mark.parametrize(
    "level, station_settings, threshold, reason",
    [
        ("full", {"audit_share": 1.0}, 0.0, "audit"),
        ("partial", {}, None, "deferred"),
        ("assisted", {}, 0.0, "human"),
        ("human", {}, 0.0, "human"),
    ],
)
def test_a_human_decision_names_why_the_unit_waited(
    make_station, make_model_version, device_client, level, station_settings, threshold, reason
):
    station = make_station(level=level, champion=make_model_version(threshold=threshold), **station_settings)
    posted = post_unit(device_client(station)).json()
    client, _ = inspector_client()
    assert client.post(f"{posted['url']}decision/", {"verdict": "pass"}, format="json").status_code == 201
    assert DecisionEvent.objects.get(unit_id=posted["id"]).reason == reason


def test_region_disagreements_are_matched_by_overlap():
    from inspection.services.decisions import region_mismatches

    human = [
        {"x": 10, "y": 10, "width": 20, "height": 20, "label": "crack"},  # the model found it
        {"x": 200, "y": 50, "width": 30, "height": 10, "label": "scratch"},  # the model missed it
        {"x": 100, "y": 100, "width": 20, "height": 20, "label": "crack"},  # found, as another class
    ]
    model = [
        {"x": 12, "y": 11, "width": 20, "height": 20, "label": "crack", "score": 0.9},
        {"x": 101, "y": 99, "width": 20, "height": 21, "label": "scratch", "score": 0.8},
        {
            "x": 300,
            "y": 10,
            "width": 15,
            "height": 15,
            "label": "crack",
            "score": 0.7,
        },  # not marked by the human
    ]
    mismatches = region_mismatches(human, model)
    assert [(h and h["x"], m and m["x"]) for h, m, _ in mismatches] == [(200, None), (100, 101), (None, 300)]
    matched_class = next(overlap for h, m, overlap in mismatches if h and m)
    assert matched_class > 0.8


def test_a_human_fail_with_regions_logs_region_disagreements(make_station, device_client):
    # given a shadow unit whose model prediction outlined one crack (set here for certainty)
    posted = post_unit(device_client(make_station(level="shadow"))).json()
    model_region = {"x": 10, "y": 10, "width": 30, "height": 20, "label": "crack", "score": 0.9}
    Prediction.objects.filter(unit_id=posted["id"]).update(
        verdict="fail", label="crack", regions=[model_region]
    )
    # when the inspector fails it with the crack and a scratch the model did not see
    client, _ = inspector_client()
    regions = [
        {"x": 11, "y": 10, "width": 30, "height": 20, "label": "crack"},
        {"x": 150, "y": 90, "width": 40, "height": 8, "label": "scratch"},
    ]
    response = client.post(
        f"{posted['url']}decision/", {"verdict": "fail", "regions": regions}, format="json"
    )
    assert response.status_code == 201
    # then no image-level disagreement, one region-level: the missed scratch
    disagreements = Disagreement.objects.filter(unit_id=posted["id"])
    assert [d.kind for d in disagreements] == ["region"]
    assert disagreements[0].detail["human"]["label"] == "scratch" and disagreements[0].detail["model"] is None
    assert DecisionEvent.objects.get(unit_id=posted["id"]).defect_classes == ["crack", "scratch"]
