"""Camera frames end to end in Chromium: the line posts full-size frames through the HTTP API, the
stain model outlines the defect, and the box the station page and the labeling page draw lies on
the defect's pixels; the inspector takes the model's region and it is recorded in original pixels.

Several units in a row, of different sizes and formats (one a PNG named .jpg, as camera software
names files), since what carries over from one unit to the next is where bugs hide.
"""

from __future__ import annotations

import pytest
import requests

from inspection.enums import AutomationLevel
from inspection.models import DecisionEvent
from inspection.services.stations import device_key_create
from labeling.models import LabelTask
from tests.browser.conftest import sign_in
from tests.browser.overlay import in_image_pixels, overlay_geometry, wait_until_painted
from tests.inspection.camera import encoded, stain_unit
from tests.inspection.factories import person

pytestmark = pytest.mark.django_db(transaction=True)

FRAMES = [  # serial, stain unit seed, size, format, the name the line's software gives the file
    ("SN-HD-1", 1001, (1920, 1080), "JPEG", "cam0001.jpg"),
    ("SN-HD-2", 1009, (1280, 720), "PNG", "cam0002.jpg"),
    ("SN-HD-3", 1002, (1920, 1080), "JPEG", "cam0003.jpg"),
]


def iou(a: dict, box: tuple[float, float, float, float]) -> float:
    x, y, w, h = box
    ix = max(0.0, min(a["x"] + a["width"], x + w) - max(a["x"], x))
    iy = max(0.0, min(a["y"] + a["height"], y + h) - max(a["y"], y))
    inter = ix * iy
    return inter / (a["width"] * a["height"] + w * h - inter)


@pytest.fixture
def station(make_station, make_model_version, stain_bundle):
    champion = make_model_version("stain", 1, threshold=None, bundle=stain_bundle)
    return make_station(level=AutomationLevel.ASSISTED, champion=champion, label_random_share=0.0)


def post_frames(server, station) -> list[tuple[dict, tuple[float, float, float, float]]]:
    _, key = device_key_create(station=station, name="line pc")
    posted = []
    for serial, seed, (width, height), fmt, name in FRAMES:
        unit = stain_unit(seed)
        response = requests.post(
            f"{server.url}/api/v1/units/",
            headers={"Authorization": f"Api-Key {key}"},
            files={"image": (name, encoded(unit.frame(width, height), fmt), "application/octet-stream")},
            data={"serial": serial},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        stain = unit.box(width, height)
        assert iou(body["regions"][0], stain) >= 0.5, (body["regions"], stain)  # the model found it
        posted.append((body, stain))
    return posted


def drawn_model_box(page, image_selector: str) -> dict:
    wait_until_painted(page, image_selector)
    geometry = overlay_geometry(page, image_selector)
    assert geometry["regions"], "no model region drawn"
    return geometry, in_image_pixels(geometry["regions"][0]["box"], geometry)


def test_the_drawn_box_lies_on_the_defect_unit_after_unit_and_what_is_taken_is_recorded_so(
    asgi_server, browser, station
):
    # given three full-size frames posted by the line, each with a stain the model outlined
    posted = post_frames(asgi_server, station)
    person("ines")
    person("lea", role="labeler")
    # when an inspector works them in a row on the station page, taking the model's region (T)
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = sign_in(context, asgi_server, "ines")
    page.goto(f"{asgi_server.url}/stations/{station.slug}/")
    for body, stain in posted:
        page.wait_for_function(
            f"() => document.getElementById('unit-serial').textContent === '{body['serial']}'"
        )
        geometry, drawn = drawn_model_box(page, "#unit-image")
        # then the box drawn over the image covers the stain's pixels, in the frame's own size
        assert (geometry["width"], geometry["height"]) == (body["width"], body["height"])
        assert iou(drawn, stain) >= 0.5, (drawn, stain)
        model = body["regions"][0]
        for key in ("x", "y", "width", "height"):
            assert abs(drawn[key] - model[key]) <= 2.0, (key, drawn, model)
        page.keyboard.press("t")  # take the model's regions as the inspector's own
        page.keyboard.press("f")  # the model's class is chosen already: fail at once
        page.wait_for_function(
            f"() => document.getElementById('status').textContent.includes('{body['serial']}: fail')"
        )
    context.close()
    # and each recorded verdict holds the region in the frame's own pixels, on the stain
    decisions = {d.unit.serial: d for d in DecisionEvent.objects.filter(decided_by_user__isnull=False)}
    assert set(decisions) == {body["serial"] for body, _ in posted}
    for body, stain in posted:
        decision = decisions[body["serial"]]
        assert decision.defect_classes == ["stain"]
        assert iou(decision.regions[0], stain) >= 0.5

    # when a labeler opens the same units on the labeling page
    context = browser.new_context(viewport={"width": 1400, "height": 860})
    page = sign_in(context, asgi_server, "lea")
    page.goto(f"{asgi_server.url}/labeling/{station.slug}/")
    for _ in posted:
        page.wait_for_function("() => window.loupeLabeling && window.loupeLabeling.ready()", timeout=15_000)
        task = LabelTask.objects.get(pk=page.evaluate("window.loupeLabeling.current().task"))
        body, stain = next((b, s) for b, s in posted if b["id"] == task.item.unit_id)
        # then the model's box drawn over the image covers the stain too
        geometry, drawn = drawn_model_box(page, "#item-image")
        assert (geometry["width"], geometry["height"]) == (body["width"], body["height"])
        assert iou(drawn, stain) >= 0.5, (drawn, stain)
        page.keyboard.press("s")  # skip to the next unit
    context.close()
