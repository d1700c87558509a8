"""Who may open what: every URL and WebSocket route against every kind of caller.

The routes are read from the URL configuration (`config.urls`, `config.routing`), so a new route
without a rule here fails `test_every_route_has_a_rule`. For each route every caller makes the
request a real client would (GET or POST, on objects that exist), and the answer must let in
exactly the callers of its rule: a refusal is 401, 403, 404 (a device key asking for another
station's unit) or, for a page, the sign-in redirect; anything else is "let in", whatever the
request then made of its body.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from PIL import Image, ImageDraw
from rest_framework.test import APIClient

from config.routing import websocket_urlpatterns
from inspection.enums import AutomationLevel, UnitStatus
from inspection.models import Prediction
from inspection.services.decisions import decision_record
from inspection.services.stations import device_key_create
from inspection.services.units import unit_submit
from inspection.supervision.models import Alarm, AlarmKind
from labeling.models import Annotation, LabelTask
from labeling.work import Shape, label_submit
from tests.inspection.factories import jpeg_bytes, person
from tests.inspection.test_realtime import WebsocketClient, key_headers, session_headers

pytestmark = pytest.mark.django_db

ANONYMOUS, OWN_KEY, OTHER_KEY = "anonymous", "this station's key", "another station's key"
NO_ROLE, INSPECTOR, LABELER, SUPERVISOR, SUPERUSER = (
    "no role",
    "inspector",
    "labeler",
    "supervisor",
    "superuser",
)
CALLERS = (ANONYMOUS, OWN_KEY, OTHER_KEY, NO_ROLE, INSPECTOR, LABELER, SUPERVISOR, SUPERUSER)

EVERYONE = frozenset(CALLERS)
PEOPLE = frozenset({NO_ROLE, INSPECTOR, LABELER, SUPERVISOR, SUPERUSER})
ROLES = frozenset({INSPECTOR, LABELER, SUPERVISOR, SUPERUSER})
DECIDERS = frozenset({INSPECTOR, SUPERVISOR, SUPERUSER})
LABELERS = frozenset({LABELER, SUPERVISOR, SUPERUSER})
SUPERVISORS = frozenset({SUPERVISOR, SUPERUSER})
KEYS = frozenset({OWN_KEY, OTHER_KEY})


@dataclass(frozen=True)
class World:
    station: str
    unit: int
    alarm: int
    task: int
    submission: int
    item: int
    mask: int
    keys: dict[str, str]


@dataclass(frozen=True)
class Rule:
    method: str
    path: Callable[[World], str]
    allowed: frozenset[str]


def _fixed(path: str) -> Callable[[World], str]:
    return lambda world: path


# Each route's request and who it lets in. Pages refuse by sending visitors to sign in.
RULES: dict[str, list[Rule]] = {
    "home": [Rule("GET", _fixed("/"), EVERYONE - {NO_ROLE})],  # a person with no role is told so (403)
    "system": [Rule("GET", _fixed("/system/"), SUPERVISORS)],
    "first-run": [Rule("GET", _fixed("/accounts/first-run/not-a-token/"), frozenset())],
    "login": [Rule("GET", _fixed("/accounts/login/"), EVERYONE)],
    "admin-login": [Rule("GET", _fixed("/admin/login/"), EVERYONE)],  # the admin's, throttled with ours
    "logout": [Rule("POST", _fixed("/accounts/logout/"), EVERYONE)],
    "password_change": [Rule("GET", _fixed("/accounts/password_change/"), PEOPLE)],
    "password_change_done": [Rule("GET", _fixed("/accounts/password_change/done/"), PEOPLE)],
    "password_reset": [Rule("GET", _fixed("/accounts/password_reset/"), EVERYONE)],
    "password_reset_done": [Rule("GET", _fixed("/accounts/password_reset/done/"), EVERYONE)],
    "password_reset_confirm": [Rule("GET", _fixed("/accounts/reset/MQ/set-password/"), EVERYONE)],
    "password_reset_complete": [Rule("GET", _fixed("/accounts/reset/done/"), EVERYONE)],
    "station-list": [Rule("GET", _fixed("/stations/"), ROLES)],
    "station-page": [Rule("GET", lambda w: f"/stations/{w.station}/", DECIDERS)],
    # The units' history: anyone with a role reads and comments; supervisors export.
    "units": [Rule("GET", _fixed("/units/"), ROLES)],
    "station-units": [Rule("GET", lambda w: f"/stations/{w.station}/units/", ROLES)],
    "units-export": [Rule("GET", _fixed("/units/export.csv"), SUPERVISORS)],
    "unit-page": [Rule("GET", lambda w: f"/units/{w.unit}/", ROLES)],
    "unit-comment": [Rule("POST", lambda w: f"/units/{w.unit}/comments/", ROLES)],
    "dashboard": [Rule("GET", _fixed("/dashboard/"), SUPERVISORS)],
    "dashboard-station": [Rule("GET", lambda w: f"/dashboard/{w.station}/", SUPERVISORS)],
    "labeling-station-list": [Rule("GET", _fixed("/labeling/"), LABELERS)],
    "labeling-page": [Rule("GET", lambda w: f"/labeling/{w.station}/", LABELERS)],
    "review-page": [Rule("GET", lambda w: f"/labeling/{w.station}/review/", LABELERS)],
    "station-retrain": [
        Rule("POST", lambda w: f"/admin/inspection/station/{_station_pk(w)}/retrain/", SUPERVISORS)
    ],
    "admin": [  # the admin: staff accounts only
        Rule("GET", _fixed("/admin/"), SUPERVISORS),
        # a station's rollout buttons (StationAdmin.get_urls): those who change stations
        Rule("POST", lambda w: f"/admin/inspection/station/{_station_pk(w)}/rollout/", SUPERVISORS),
    ],
    "health": [Rule("GET", _fixed("/api/v1/health"), EVERYONE)],
    "unit-list": [
        Rule("GET", _fixed("/api/v1/units/"), KEYS | ROLES),  # a key lists its own station's
        Rule("POST", _fixed("/api/v1/units/"), KEYS),
    ],
    "unit-detail": [Rule("GET", lambda w: f"/api/v1/units/{w.unit}/", {OWN_KEY} | ROLES)],
    "unit-decision": [Rule("POST", lambda w: f"/api/v1/units/{w.unit}/decision/", DECIDERS)],
    "unit-image": [Rule("GET", lambda w: f"/api/v1/units/{w.unit}/image", {OWN_KEY} | ROLES)],
    "unit-claim": [Rule("POST", lambda w: f"/api/v1/units/{w.unit}/claim/", DECIDERS)],
    "unit-release": [Rule("POST", lambda w: f"/api/v1/units/{w.unit}/release/", DECIDERS)],
    "station-claim": [Rule("POST", lambda w: f"/api/v1/stations/{w.station}/claim/", DECIDERS)],
    "station-queue": [Rule("GET", lambda w: f"/api/v1/stations/{w.station}/queue/", {OWN_KEY} | ROLES)],
    "dashboard-figures": [Rule("GET", _fixed("/api/v1/dashboard/"), SUPERVISORS)],
    "dashboard-station-figures": [
        Rule("GET", lambda w: f"/api/v1/dashboard/stations/{w.station}/", SUPERVISORS)
    ],
    "alarm-acknowledge": [Rule("POST", lambda w: f"/api/v1/alarms/{w.alarm}/acknowledge/", SUPERVISORS)],
    "alarm-clear": [Rule("POST", lambda w: f"/api/v1/alarms/{w.alarm}/clear/", SUPERVISORS)],
    "labeling-task-claim": [
        Rule("POST", lambda w: f"/api/v1/labeling/stations/{w.station}/tasks/claim/", LABELERS)
    ],
    "labeling-review-claim": [
        Rule("POST", lambda w: f"/api/v1/labeling/stations/{w.station}/reviews/claim/", LABELERS)
    ],
    "labeling-figures": [Rule("GET", lambda w: f"/api/v1/labeling/stations/{w.station}/figures/", LABELERS)],
    "labeling-task-release": [Rule("POST", lambda w: f"/api/v1/labeling/tasks/{w.task}/release/", LABELERS)],
    "labeling-task-submit": [
        Rule("POST", lambda w: f"/api/v1/labeling/tasks/{w.task}/submissions/", LABELERS)
    ],
    "labeling-review-release": [
        Rule("POST", lambda w: f"/api/v1/labeling/submissions/{w.submission}/release/", LABELERS)
    ],
    "labeling-review": [
        Rule("POST", lambda w: f"/api/v1/labeling/submissions/{w.submission}/review/", LABELERS)
    ],
    # Data set images: labelers, and whoever may see the units they came from.
    "labeling-item-image": [Rule("GET", lambda w: f"/api/v1/labeling/items/{w.item}/image", ROLES)],
    "labeling-annotation-mask": [Rule("GET", lambda w: f"/api/v1/labeling/annotations/{w.mask}/mask", ROLES)],
    # The API's description holds no data: open, as a line integrator reads it before any key.
    "openapi-schema": [Rule("GET", _fixed("/api/v1/schema/"), EVERYONE)],
    "api-docs": [Rule("GET", _fixed("/api/v1/docs/"), EVERYONE)],
    # Open unless LOUPE_METRICS_TOKEN is set (tests/config/test_metrics.py): counts, no records.
    "metrics": [Rule("GET", _fixed("/metrics"), EVERYONE)],
}

WEBSOCKET_RULES: dict[str, Rule] = {
    "station-events": Rule("WS", lambda w: f"/ws/stations/{w.station}/events/", {OWN_KEY} | ROLES),
    "dashboard-events": Rule("WS", _fixed("/ws/dashboard/"), SUPERVISORS),
}


def _station_pk(world: World) -> int:
    from inspection.models import Station

    return Station.objects.get(slug=world.station).pk


def _route_names() -> set[str]:
    names: set[str] = set()

    def walk(patterns) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.app_name == "admin":
                    names.add("admin")
                else:
                    walk(pattern.url_patterns)
            elif isinstance(pattern, URLPattern):
                assert pattern.name, f"the URL {pattern.pattern} has no name to give it a rule by"
                names.add(pattern.name)

    walk(get_resolver().url_patterns)
    return names


def test_every_route_has_a_rule():
    assert _route_names() - {"media"} == set(RULES), "a route without a rule, or a rule without its route"
    assert {pattern.name for pattern in websocket_urlpatterns} == set(WEBSOCKET_RULES)


def _mask_png(width: int, height: int) -> bytes:
    mask = Image.new("L", (width, height))
    ImageDraw.Draw(mask).rectangle((40, 30, 90, 60), fill=255)
    buffer = io.BytesIO()
    mask.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def world(make_station, media_root) -> World:
    station = make_station(slug="line-a", level=AutomationLevel.ASSISTED, defect_classes=["crack"])
    other = make_station(slug="line-b", level=AutomationLevel.ASSISTED, champion=station.champion)
    inspector = person("ines", role=INSPECTOR)
    # A decided unit the model was unsure of: its data set item and label task, and a label with a
    # brush mask waiting for review.
    decided = unit_submit(station=station, serial="SN-1", image_data=jpeg_bytes(1), filename="a.jpg").unit
    Prediction.objects.filter(unit=decided).update(defect_probability=0.55)
    decision_record(unit=decided, user=inspector, verdict="fail")
    task = LabelTask.objects.get(item__unit=decided)
    submission = label_submit(
        task=task,
        user=person("lea", role=LABELER),
        shapes=[Shape(kind="mask", label="crack", mask_png=_mask_png(320, 180))],
    )
    # One more task to claim, label and release.
    second = unit_submit(station=station, serial="SN-2", image_data=jpeg_bytes(2), filename="b.jpg").unit
    Prediction.objects.filter(unit=second).update(defect_probability=0.5)
    decision_record(unit=second, user=inspector, verdict="pass")
    pending = unit_submit(station=station, serial="SN-3", image_data=jpeg_bytes(3), filename="c.jpg").unit
    assert pending.status == UnitStatus.PENDING
    alarm = Alarm.objects.create(
        station=station, kind=AlarmKind.SCORE, summary="scores moved", last_seen_at=timezone.now()
    )
    return World(
        station=station.slug,
        unit=pending.pk,
        alarm=alarm.pk,
        task=LabelTask.objects.get(item__unit=second).pk,
        submission=submission.pk,
        item=task.item_id,
        mask=Annotation.objects.get(submission=submission, kind="mask").pk,
        keys={
            OWN_KEY: device_key_create(station=station, name="line a")[1],
            OTHER_KEY: device_key_create(station=other, name="line b")[1],
        },
    )


def _account(caller: str):
    """A signed-in caller's account (no password: the clients sign in with `force_login`)."""
    user_model = get_user_model()
    if caller == NO_ROLE:
        return user_model.objects.create(username="nobody")
    if caller == SUPERUSER:
        return user_model.objects.create(username="root", is_staff=True, is_superuser=True)
    # Supervisors work in the admin too.
    user = user_model.objects.create(username=f"someone-{caller}", is_staff=caller == SUPERVISOR)
    user.groups.add(Group.objects.get(name=caller))
    return user


def _client(caller: str, world: World) -> Client:
    if caller in KEYS:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {world.keys[caller]}")
        return client
    client = Client()
    if caller != ANONYMOUS:
        client.force_login(_account(caller))
    return client


def _refused(response) -> bool:
    if response.status_code in (401, 403, 404):
        return True
    location = response.headers.get("Location", "")
    signing_in = location.startswith((f"{settings.LOGIN_URL}?next=", "/admin/login/?next="))
    return response.status_code == 302 and signing_in


@pytest.mark.parametrize(
    ("name", "index"), [(name, index) for name, rules in RULES.items() for index in range(len(rules))]
)
def test_each_route_lets_in_exactly_its_callers(world, name, index):
    rule = RULES[name][index]
    path = rule.path(world)
    let_in = set()
    for caller in CALLERS:
        client = _client(caller, world)
        response = client.get(path) if rule.method == "GET" else client.post(path, {})
        assert response.status_code < 500, (caller, path, response.status_code)
        if not _refused(response):
            let_in.add(caller)
    assert let_in == set(rule.allowed), f"{rule.method} {path}"


def _websocket_accepted(path: str, headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the handshake stays open: a refused one is accepted and closed inside `connect`,
    before the disconnect sent after it is handled, so the close is in the output by then."""

    async def scenario() -> bool:
        websocket = WebsocketClient(path, headers)
        await websocket.send_input({"type": "websocket.connect"})
        first = await websocket.receive_output(10)
        await websocket.send_input({"type": "websocket.disconnect", "code": 1000})
        await websocket.wait(10)
        closed = first["type"] == "websocket.close"
        while not websocket.output_queue.empty():
            closed |= (await websocket.receive_output(1))["type"] == "websocket.close"
        return not closed

    return async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("channel_layer")
@pytest.mark.parametrize("name", WEBSOCKET_RULES)
def test_each_websocket_route_lets_in_exactly_its_callers(world, name):
    rule = WEBSOCKET_RULES[name]
    let_in = set()
    for caller in CALLERS:
        if caller in KEYS:
            headers = key_headers(world.keys[caller])
        elif caller == ANONYMOUS:
            headers = []
        else:
            headers = session_headers(_account(caller))
        if _websocket_accepted(rule.path(world), headers):
            let_in.add(caller)
    assert let_in == set(rule.allowed), rule.path(world)
