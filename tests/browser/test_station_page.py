"""The station page in Chromium: live arrivals, one-key decisions, blind levels, two inspectors."""

from __future__ import annotations

import io
import math
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import requests

from inspection.models import DecisionEvent, Prediction, Station, Unit
from inspection.selectors import unit_deciding_prediction, unit_why_shown
from inspection.services.decisions import decision_record
from inspection.services.queue import unit_claim, unit_claim_release
from inspection.services.stations import device_key_create
from inspection.services.units import unit_submit
from models_registry.ml.synthetic.config import SyntheticConfig
from models_registry.ml.synthetic.scene import generate_unit
from tests.browser.conftest import sign_in
from tests.browser.overlay import (
    assert_covers,
    assert_mask_drawn_over_its_cells,
    in_image_pixels,
    masked_region,
    overlay_geometry,
    screen_scale,
    screenshot,
    wait_until_painted,
)
from tests.inspection.factories import jpeg_bytes, person

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "station-page.png"
REGIONS = [
    {"x": 60, "y": 40, "width": 90, "height": 30, "label": "crack", "score": 0.91},
    {"x": 200, "y": 100, "width": 40, "height": 40, "label": "scratch", "score": 0.62},
]


class Line:
    """The production line's computer: posts units and long-polls through the real HTTP API."""

    def __init__(self, server, station):
        _, key = device_key_create(station=station, name="line pc")
        self.server = server
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Api-Key {key}"

    def post(self, serial: str, seed: int = 0, **size) -> dict:
        return self.post_bytes(serial, jpeg_bytes(seed, **size))

    def post_bytes(self, serial: str, image: bytes) -> dict:
        response = self.session.post(
            f"{self.server.url}/api/v1/units/",
            files={"image": ("unit.jpg", image, "image/jpeg")},
            data={"serial": serial},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return response.json()

    def wait(self, unit: dict, seconds: float = 10) -> dict:
        response = self.session.get(
            f"{self.server.url}{unit['url']}", params={"wait": seconds}, timeout=seconds + 5
        )
        return response.json()


def with_regions(unit: dict) -> None:
    """Give the unit's prediction known regions, so the test can check what is drawn (the tiny
    test model's own regions are whatever one epoch at 64 px learned)."""
    Prediction.objects.filter(unit_id=unit["id"]).update(regions=REGIONS)


def test_a_unit_posted_by_the_line_appears_live_and_the_fail_key_reaches_the_line(
    asgi_server, browser, make_station
):
    # given an inspector on the station page of an AI-assisted station, with an empty queue
    station = make_station(level="assisted")
    person("ines")
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = sign_in(context, asgi_server, "ines")
    page.goto(f"{asgi_server.url}/stations/{station.slug}/")
    page.wait_for_selector("#live.ok")
    assert page.is_visible("#empty")
    # when the line posts a unit
    line = Line(asgi_server, station)
    unit = line.post("SN-LIVE-1", seed=4)
    # then it appears without a reload, with as many outlines as the model gave regions
    page.wait_for_function(
        "() => document.getElementById('unit-serial').textContent === 'SN-LIVE-1'", timeout=10_000
    )
    model_regions = Prediction.objects.get(unit_id=unit["id"]).regions
    assert page.locator(".region.model").count() == len(model_regions)
    # and when the inspector picks class 2 and presses the fail key, the line's long-poll says fail
    answer: dict = {}
    poll = threading.Thread(target=lambda: answer.update(line.wait(unit)))
    poll.start()
    page.keyboard.press("2")
    page.keyboard.press("f")
    poll.join(timeout=15)
    assert answer.get("decision") == "fail" and answer.get("decided_by") == "human"
    event = DecisionEvent.objects.get(unit_id=unit["id"])
    assert event.defect_classes == ["scratch"] and event.decided_by_user.username == "ines"
    context.close()


def test_assisted_units_show_the_models_regions_and_h_hides_them(asgi_server, browser, make_station):
    # given a 1280x720 unit with two cracks, its prediction outlining them (the generator's true
    # boxes stand in for a well-trained model's regions: the tiny test model's are arbitrary)
    station = make_station(level="assisted")
    person("ines")
    cracked = generate_unit(np.random.default_rng(21), SyntheticConfig(width=1280, height=720), label="crack")
    buffer = io.BytesIO()
    cracked.image.convert("RGB").save(buffer, "JPEG", quality=90)
    unit = Line(asgi_server, station).post_bytes("SN-000412", buffer.getvalue())
    regions = [
        {"x": x, "y": y, "width": w, "height": h, "label": "crack", "score": round(0.93 - 0.07 * index, 2)}
        for index, (x, y, w, h) in enumerate(instance.box for instance in cracked.instances)
    ]
    Prediction.objects.filter(unit_id=unit["id"]).update(regions=regions, verdict="fail", label="crack")
    # when the inspector opens the station page
    context = browser.new_context(viewport={"width": 1440, "height": 860})
    page = sign_in(context, asgi_server, "ines")
    page.goto(f"{asgi_server.url}/stations/{station.slug}/")
    page.wait_for_function("() => document.getElementById('unit-serial').textContent === 'SN-000412'")
    page.wait_for_selector("#live.ok")
    page.wait_for_function("() => document.getElementById('queue-pending').textContent !== '–'")
    # then every region is outlined with its class and score
    assert page.locator(".region.model").count() == len(regions)
    assert f"crack {regions[0]['score']:.2f}" in page.text_content("#overlay")
    if os.environ.get("LOUPE_UPDATE_SCREENSHOTS") == "1":
        page.screenshot(path=str(SCREENSHOT))
    # H hides the highlights; T takes them as the inspector's own regions
    page.keyboard.press("h")
    assert page.locator(".region.model").count() == 0
    page.keyboard.press("t")
    assert page.locator(".region.draft").count() == len(regions)
    context.close()


def test_blind_levels_show_nothing_of_the_model(asgi_server, browser, make_station):
    station = make_station(level="shadow")
    person("ines")
    line = Line(asgi_server, station)
    unit = line.post("SN-BLIND", seed=2)
    with_regions(unit)
    context = browser.new_context()
    page = sign_in(context, asgi_server, "ines")
    page.goto(f"{asgi_server.url}/stations/{station.slug}/")
    page.wait_for_function("() => document.getElementById('unit-serial').textContent === 'SN-BLIND'")
    assert page.locator(".region.model").count() == 0
    assert "blind" in page.inner_text("#unit-model")
    # even pressing "take the model's regions" and toggling highlights shows nothing
    page.keyboard.press("t")
    page.keyboard.press("h")
    page.keyboard.press("h")
    assert page.locator(".region").count() == 0
    context.close()


def test_two_inspectors_get_different_units(asgi_server, browser, make_station):
    station = make_station(level="assisted")
    person("ines")
    person("omar")
    line = Line(asgi_server, station)
    for index in range(4):
        line.post(f"SN-{index}", seed=index)
    serials = []
    contexts = []
    for name in ("ines", "omar"):
        context = browser.new_context()
        contexts.append(context)
        page = sign_in(context, asgi_server, name)
        page.goto(f"{asgi_server.url}/stations/{station.slug}/")
        page.wait_for_function("() => document.getElementById('unit-serial').textContent.startsWith('SN-')")
        serials.append(page.inner_text("#unit-serial"))
    assert serials[0] != serials[1]
    claims = dict(Unit.objects.filter(serial__in=serials).values_list("serial", "claimed_by__username"))
    assert claims == {serials[0]: "ines", serials[1]: "omar"}
    for context in contexts:
        context.close()


def test_the_keys_work_without_the_mouse(asgi_server, browser, make_station):
    station = make_station(level="assisted")
    person("ines")
    line = Line(asgi_server, station)
    units = [line.post(f"SN-K{index}", seed=index) for index in range(3)]
    context = browser.new_context()
    page = sign_in(context, asgi_server, "ines")
    page.goto(f"{asgi_server.url}/stations/{station.slug}/")

    def showing(serial: str) -> None:
        page.wait_for_function(f"() => document.getElementById('unit-serial').textContent === '{serial}'")

    showing("SN-K0")
    page.keyboard.press("p")  # pass
    showing("SN-K1")
    page.keyboard.press("s")  # skip: back to the queue
    showing("SN-K2")
    page.keyboard.press("1")
    page.keyboard.press("f")  # fail as class 1
    page.wait_for_function("() => document.getElementById('status').textContent.includes('SN-K2: fail')")
    page.keyboard.press("z")  # undo: SN-K2 comes back to be decided again
    showing("SN-K2")
    page.keyboard.press("p")
    page.wait_for_function("() => document.getElementById('status').textContent.includes('SN-K2: pass')")
    verdicts = {
        unit["serial"]: list(
            DecisionEvent.objects.filter(unit_id=unit["id"]).order_by("id").values_list("verdict", "reason")
        )
        for unit in units
    }
    assert verdicts == {
        "SN-K0": [("pass", "human")],
        "SN-K1": [],
        "SN-K2": [("fail", "human"), ("pass", "override")],
    }
    assert Unit.objects.get(serial="SN-K1").claimed_by is None  # skipped units go back
    # zoom and the overlay toggle answer their keys too
    before = page.eval_on_selector("#stage", "element => element.style.transform")
    page.keyboard.press("+")
    assert page.eval_on_selector("#stage", "element => element.style.transform") != before
    context.close()


def test_a_region_drawn_with_the_mouse_goes_with_the_fail(asgi_server, browser, make_station):
    station = make_station(level="assisted")
    person("ines")
    unit = Line(asgi_server, station).post("SN-DRAW", seed=5)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = sign_in(context, asgi_server, "ines")
    page.goto(f"{asgi_server.url}/stations/{station.slug}/")
    page.wait_for_function("() => document.getElementById('unit-serial').textContent === 'SN-DRAW'")
    # the class, then the Draw button and a drag across the middle of the image, then Fail
    page.click("#classes li[data-class='scratch']")
    page.click("#btn-draw")
    box = page.locator("#unit-image").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5, steps=5)
    page.mouse.up()
    assert page.locator("#drafts li").count() == 1
    page.click("#btn-fail")
    page.wait_for_function("() => document.getElementById('status').textContent.includes('SN-DRAW: fail')")
    event = DecisionEvent.objects.get(unit_id=unit["id"])
    (region,) = event.regions
    assert region["label"] == "scratch" and event.defect_classes == ["scratch"]
    # in image pixels: about 30 % to 60 % across the 320 px wide image
    assert 80 < region["x"] < 110 and 80 < region["width"] < 110
    context.close()


def predicted(unit: dict, label: str, regions: list[dict]) -> None:
    """The unit's prediction: a fail of class `label`, with these regions."""
    Prediction.objects.filter(unit_id=unit["id"]).update(label=label, verdict="fail", regions=regions)


def showing(page, serial: str) -> None:
    page.wait_for_function(f"() => document.getElementById('unit-serial').textContent === '{serial}'")


def status_says(page, text: str) -> None:
    page.wait_for_function(f"() => document.getElementById('status').textContent.includes({text!r})")


def chosen_classes(page) -> list[str]:
    return page.eval_on_selector_all("#classes li.on", "items => items.map((item) => item.dataset.class)")


def test_each_unit_starts_from_the_models_class_and_a_fail_without_a_class_asks_for_one(
    asgi_server, browser, make_station
):
    # given an AI-assisted station with four classes: a unit the model calls scratch, one it
    # calls crack, then (the station moved to shadow mode) two blind ones the model calls crack
    station = make_station(level="assisted", defect_classes=["crack", "dead_pixels", "scratch", "stain"])
    person("ines")
    line = Line(asgi_server, station)
    scratched = line.post("SN-C1", seed=1)
    predicted(scratched, "scratch", [{**REGIONS[1], "label": "scratch"}])
    cracked = line.post("SN-C2", seed=2)
    predicted(cracked, "crack", REGIONS[:1])
    # (posted in-process: the server's device-key cache still holds the station as it was)
    Station.objects.filter(pk=station.pk).update(automation_level="shadow")
    station.refresh_from_db()
    blind = []
    for index in (3, 4):
        serial, image = f"SN-C{index}", jpeg_bytes(index)
        submitted = unit_submit(station=station, serial=serial, image_data=image, filename="unit.jpg").unit
        assert submitted.blind
        blind.append({"id": submitted.id})
        predicted(blind[-1], "crack", REGIONS[:1])
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = sign_in(context, asgi_server, "ines")
    page.goto(f"{asgi_server.url}/stations/{station.slug}/")
    # the scratch unit: scratch is chosen; the inspector sees a stain instead, and fails it as one
    showing(page, "SN-C1")
    assert chosen_classes(page) == ["scratch"]
    page.keyboard.press("4")
    assert chosen_classes(page) == ["stain"]
    page.keyboard.press("f")
    status_says(page, "SN-C1: fail")
    # the crack unit starts from crack, not from the stain chosen before
    showing(page, "SN-C2")
    assert chosen_classes(page) == ["crack"]
    page.keyboard.press("f")
    status_says(page, "SN-C2: fail")
    # blind: nothing chosen; F asks for a class instead of failing, and the class chosen then fails
    showing(page, "SN-C3")
    assert chosen_classes(page) == []
    page.keyboard.press("f")
    status_says(page, "Fail as which defect?")
    assert page.is_visible("#classes.asking")
    assert page.inner_text("#unit-serial") == "SN-C3"
    assert not DecisionEvent.objects.filter(unit_id=blind[0]["id"]).exists()
    page.keyboard.press("2")
    status_says(page, "SN-C3: fail")
    # a region drawn before any class is chosen has none; F asks, Esc cancels, and the class
    # chosen after a second F labels the region and fails the unit
    showing(page, "SN-C4")
    assert chosen_classes(page) == [] and not page.is_visible("#classes.asking")
    page.keyboard.press("b")
    image = page.locator("#unit-image").bounding_box()
    page.mouse.move(image["x"] + image["width"] * 0.2, image["y"] + image["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(image["x"] + image["width"] * 0.4, image["y"] + image["height"] * 0.5, steps=5)
    page.mouse.up()
    assert page.inner_text("#drafts").startswith("no class yet")
    page.keyboard.press("f")
    status_says(page, "Fail as which defect?")
    page.keyboard.press("Escape")
    status_says(page, "Fail cancelled")
    assert not page.is_visible("#classes.asking")
    page.keyboard.press("f")
    page.keyboard.press("3")
    status_says(page, "SN-C4: fail")
    # then each decision holds the class the inspector meant for that unit
    events = DecisionEvent.objects.select_related("unit").filter(decided_by_user__username="ines")
    recorded = {
        event.unit.serial: (event.verdict, event.defect_classes, [r["label"] for r in event.regions])
        for event in events
    }
    assert recorded == {
        "SN-C1": ("fail", ["stain"], []),
        "SN-C2": ("fail", ["crack"], []),
        "SN-C3": ("fail", ["dead_pixels"], []),
        "SN-C4": ("fail", ["scratch"], ["scratch"]),
    }
    context.close()


def test_the_models_box_and_mask_cover_the_regions_pixels_on_a_1920x1080_unit_and_h_hides_them(
    asgi_server, browser, make_station
):
    # given a 1920x1080 unit whose prediction has a masked scratch and a hairline crack (a box only)
    station = make_station(level="assisted")
    person("ines")
    unit = Line(asgi_server, station).post("SN-HD", seed=3, width=1920, height=1080)
    scratch = masked_region(1200.4, 300.2, 297.5, 161.3, label="scratch", score=0.87)
    hairline = {"x": 301.0, "y": 650.5, "width": 37.0, "height": 3.0, "label": "crack", "score": 0.7}
    predicted(unit, "scratch", [scratch, hairline])
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = sign_in(context, asgi_server, "ines")
    page.goto(f"{asgi_server.url}/stations/{station.slug}/")
    showing(page, "SN-HD")
    wait_until_painted(page, "#unit-image")
    # then, mapped back through the image's on-screen rectangle, each box lies on its region
    geometry = overlay_geometry(page, "#unit-image")
    assert (geometry["width"], geometry["height"]) == (1920, 1080)
    assert screen_scale(geometry) < 0.7  # fitted: the image is shown smaller than its pixels
    drawn_scratch, drawn_hairline = geometry["regions"]
    assert_covers(in_image_pixels(drawn_scratch["box"], geometry), scratch)
    assert_covers(in_image_pixels(drawn_scratch["mask"], geometry), scratch)
    assert_covers(in_image_pixels(drawn_hairline["box"], geometry), hairline)
    assert drawn_hairline["mask"] is None
    # the mask changes exactly the screen pixels of its defect cells; H hides it with the boxes
    shown = screenshot(page)
    page.keyboard.press("h")
    assert page.locator(".region.model, .region-mask").count() == 0
    hidden = screenshot(page)
    assert_mask_drawn_over_its_cells(scratch, geometry, shown, hidden)
    page.keyboard.press("h")
    assert page.locator(".region-mask").count() == 1
    wait_until_painted(page, "#unit-image")
    assert_mask_drawn_over_its_cells(scratch, geometry, screenshot(page), hidden)
    context.close()


def test_captions_and_outlines_keep_their_screen_size_on_small_and_large_units_and_zoomed(
    asgi_server, browser, make_station
):
    # given a 640x360 unit and a 1920x1080 one, each with a region
    station = make_station(level="assisted")
    person("ines")
    line = Line(asgi_server, station)
    for serial, size in (("SN-SMALL", 1), ("SN-LARGE", 3)):
        unit = line.post(serial, seed=size, width=640 * size, height=360 * size)
        region = {"x": 100 * size, "y": 100 * size, "width": 120 * size, "height": 60 * size}
        predicted(unit, "crack", [{**region, "label": "crack", "score": 0.8}])
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = sign_in(context, asgi_server, "ines")
    page.goto(f"{asgi_server.url}/stations/{station.slug}/")

    def on_screen() -> dict:
        """The image's scale, the caption's font size and height and the outline's width, on screen."""
        geometry = overlay_geometry(page, "#unit-image")
        (region,) = geometry["regions"]
        scale = screen_scale(geometry)
        return {
            "scale": scale,
            "font": region["caption_font_px"] * scale,
            "caption_height": region["caption"]["height"],
            "stroke": region["stroke_px"] * scale,
        }

    showing(page, "SN-SMALL")
    small = on_screen()
    page.keyboard.press("p")
    showing(page, "SN-LARGE")
    large = on_screen()
    page.keyboard.press("+")
    page.keyboard.press("+")
    zoomed = on_screen()
    # then one shown enlarged, one reduced, one zoomed: the same 13 px captions and 3 px outlines
    assert small["scale"] > 1.2 and large["scale"] < 0.7 and zoomed["scale"] > large["scale"] * 1.5
    for seen in (small, large, zoomed):
        assert seen["font"] == pytest.approx(13, abs=0.05) and seen["stroke"] == pytest.approx(3, abs=0.05)
        # (the text's box is the font's metrics rounded at its size before the zoom: within 10 %)
        assert seen["caption_height"] == pytest.approx(small["caption_height"], rel=0.1)
    context.close()


HD = {"width": 1920, "height": 1080}
UNIT_CONTROLS = ("#btn-pass", "#btn-fail", "#btn-draw", "#btn-accept", "#btn-skip")


def shown_zoom_is_the_images_own(page) -> float:
    """The zoom the page shows is the image's on-screen size over its 1920 pixels (100 %: one
    image pixel per CSS pixel); the zoom, as a fraction."""
    rendered = page.locator("#unit-image").bounding_box()["width"] / HD["width"]
    assert page.inner_text("#zoom-level") == f"{math.floor(rendered * 100 + 0.5)} %"
    return rendered


def controls_enabled(page) -> list[bool]:
    return [page.is_enabled(selector) for selector in UNIT_CONTROLS]


def why_line(unit_id: int) -> str:
    unit = Unit.objects.get(pk=unit_id)
    prediction = None if unit.blind else unit_deciding_prediction(unit=unit)
    return unit_why_shown(unit=unit, prediction=prediction)


def test_an_inspector_skips_goes_back_and_empties_the_queue_and_a_new_unit_arrives_live(
    asgi_server, browser, make_station, make_model_version
):
    # given a partial-automation station whose model is certified at nothing less than full
    # confidence, so three 1920x1080 units the line posts are deferred to a person
    station = make_station(level="partial", champion=make_model_version(threshold=1.0))
    ines, omar = person("ines"), person("omar")
    line = Line(asgi_server, station)
    serials = ("SN-A", "SN-B", "SN-C")
    posted = {serial: line.post(serial, seed=index, **HD) for index, serial in enumerate(serials)}
    ids = {serial: unit["id"] for serial, unit in posted.items()}
    assert all(unit["status"] == "pending" for unit in posted.values())
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = sign_in(context, asgi_server, "ines")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{asgi_server.url}/stations/{station.slug}/")
    page.wait_for_selector("#live.ok")

    def on_screen(serial: str) -> None:
        showing(page, serial)
        # the line says why, from the thresholds in force when it arrived; the zoom is in pixels
        assert page.inner_text("#unit-reason") == why_line(ids[serial])
        shown_zoom_is_the_images_own(page)
        assert controls_enabled(page) == [True] * len(UNIT_CONTROLS)

    # SN-A: deferred, its confidence below the station's 1.00, fitted to the viewport
    on_screen("SN-A")
    assert page.inner_text("#unit-reason").startswith("Deferred: confidence 0.")
    assert page.inner_text("#unit-reason").endswith(" this station needs")
    fitted = shown_zoom_is_the_images_own(page)
    assert fitted < 1
    page.keyboard.press("+")
    assert shown_zoom_is_the_images_own(page) == pytest.approx(fitted * 1.25)
    page.keyboard.press("0")
    assert shown_zoom_is_the_images_own(page) == pytest.approx(fitted)
    # when she skips SN-A and SN-B, each goes back to the queue and into Skipped
    page.keyboard.press("s")
    on_screen("SN-B")
    page.keyboard.press("s")
    on_screen("SN-C")
    page.wait_for_function("() => document.getElementById('skipped-count').textContent === '2'")
    assert Unit.objects.filter(pk__in=[ids["SN-A"], ids["SN-B"]], claimed_by__isnull=True).count() == 2
    # meanwhile omar decides SN-B: it leaves her Skipped live; and he holds SN-A for now
    taken = unit_claim(unit=Unit.objects.get(pk=ids["SN-B"]), user=omar)
    decision_record(unit=taken, user=omar, verdict="pass")
    page.wait_for_function("() => document.getElementById('skipped-count').textContent === '1'")
    unit_claim(unit=Unit.objects.get(pk=ids["SN-A"]), user=omar)
    page.keyboard.press("k")
    assert page.is_visible("#skipped-list") and page.inner_text("#skipped-list") == "SN-A: judge it now"
    page.keyboard.press("Enter")  # the first skipped unit has the focus: SN-A
    status_says(page, "Cannot go back to SN-A: SN-A is being judged by omar")
    assert page.inner_text("#unit-serial") == "SN-C"
    page.keyboard.press("Escape")
    assert page.is_hidden("#skipped-list")
    assert unit_claim_release(unit=Unit.objects.get(pk=ids["SN-A"]), user=omar)
    # she decides SN-C: nothing else waits for her but the unit she skipped; the controls wait
    page.keyboard.press("p")
    page.wait_for_selector("#empty", state="visible")
    assert "you skipped is under Skipped" in page.inner_text("#empty")
    assert controls_enabled(page) == [False] * len(UNIT_CONTROLS)
    assert page.inner_text("#zoom-level") == "–" and page.inner_text("#unit-reason") == "–"
    # she goes back to SN-A (claimed for her again) and passes it
    page.click("#btn-skipped")
    page.click(f"#skipped-list button[data-unit='{ids['SN-A']}']")
    on_screen("SN-A")
    assert page.is_hidden("#skipped-list")
    assert Unit.objects.get(pk=ids["SN-A"]).claimed_by == ines
    assert page.inner_text("#skipped-count") == "0" and page.is_disabled("#btn-skipped")
    page.keyboard.press("p")
    # then the queue is empty: the controls are disabled, not just hidden, and keys do nothing
    page.wait_for_function(
        "() => !document.getElementById('empty').hidden"
        " && document.getElementById('empty').textContent.startsWith('The queue is empty')"
    )
    assert "appear here live" in page.inner_text("#empty")
    assert controls_enabled(page) == [False] * len(UNIT_CONTROLS)
    assert page.is_visible("#btn-pass") and page.is_visible("#classes.disabled")
    page.keyboard.press("f")
    page.keyboard.press("s")
    status_says(page, "SN-A: pass")
    page.wait_for_function("() => document.getElementById('queue-pending').textContent === '0'")
    # when the station moves to full automation with every unit audited, a new unit arrives live
    Station.objects.filter(pk=station.pk).update(automation_level="full", audit_share=1.0)
    station.refresh_from_db()
    audited = unit_submit(station=station, serial="SN-D", image_data=jpeg_bytes(7, **HD), filename="unit.jpg")
    ids["SN-D"] = audited.unit.id
    # then it is on screen at once, the controls enabled, the line saying why without the model
    on_screen("SN-D")
    assert page.inner_text("#unit-reason") == (
        "Random audit (100 % of full automation's units): judge it blind"
    )
    assert "blind" in page.inner_text("#unit-model") and page.locator(".region.model").count() == 0
    page.keyboard.press("1")
    page.keyboard.press("f")
    status_says(page, "SN-D: fail")
    events = DecisionEvent.objects.values_list("unit__serial", "verdict", "decided_by_user__username")
    events = events.filter(unit_id__in=ids.values())
    assert events.count() == len(ids)  # one decision each: the keys on an empty queue did nothing
    decided = {serial: (verdict, who) for serial, verdict, who in events}
    assert decided == {
        "SN-A": ("pass", "ines"),
        "SN-B": ("pass", "omar"),
        "SN-C": ("pass", "ines"),
        "SN-D": ("fail", "ines"),
    }
    assert errors == []
    context.close()


def test_the_keys_panel_shows_exactly_the_keys_the_page_handles(asgi_server, browser, make_station):
    station = make_station(level="assisted")
    person("ines")
    context = browser.new_context()
    page = sign_in(context, asgi_server, "ines")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{asgi_server.url}/stations/{station.slug}/")
    page.wait_for_function("() => window.loupeKeys && window.loupeKeys.page === 'station'")
    shown = sorted(set(page.locator("#keys-help kbd").all_inner_texts()))
    assert shown == page.evaluate("window.loupeKeys.bound.station")
    assert {"P", "F", "S", "K", "Z", "B", "T", "H", "1", "9", "+", "−", "0", "Esc"} <= set(shown)
    # each button's key cap is its action's key, from the same keymap
    buttons = ("btn-pass", "btn-fail", "btn-skip", "btn-draw")
    caps = {button: page.inner_text(f"#{button} kbd") for button in buttons}
    assert caps == {"btn-pass": "P", "btn-fail": "F", "btn-skip": "S", "btn-draw": "B"}
    assert "within 10 s" in page.inner_text("#keys-help")
    assert errors == []


def test_a_station_with_twelve_classes_picks_each_by_key_name_or_click(asgi_server, browser, make_station):
    # given a shadow station (blind: no class chosen beforehand) with twelve classes, four units
    names = [
        "crack",
        "scratch",
        "stain",
        "dent",
        "chip",
        "bubble",
        "burr",
        "dust",
        "lint",
        "smudge",
        "rust",
        "warp",
    ]
    station = make_station(level="shadow", defect_classes=names)
    person("ines")
    for index in range(1, 5):
        unit_submit(
            station=station,
            serial=f"SN-M{index}",
            image_data=jpeg_bytes(index, width=1280, height=720),
            filename="u.jpg",
        )
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = sign_in(context, asgi_server, "ines")
    page.goto(f"{asgi_server.url}/stations/{station.slug}/")
    # every class is listed, the first nine with their key
    showing(page, "SN-M1")
    assert (
        page.eval_on_selector_all("#classes li", "items => items.map((item) => item.dataset.class)") == names
    )
    keys = page.eval_on_selector_all("#classes li kbd", "keys => keys.map((k) => k.textContent)")
    assert keys == [str(n) for n in range(1, 10)] + ["", "", ""]
    # the ninth by its key
    page.keyboard.press("9")
    assert chosen_classes(page) == ["lint"]
    page.keyboard.press("f")
    status_says(page, "SN-M1: fail")
    # the eleventh by name after F asked: "/" to find, typed letters stay in the finder (its "s"
    # skips nothing), Enter picks and fails
    showing(page, "SN-M2")
    page.keyboard.press("f")
    status_says(page, "Fail as which defect?")
    page.keyboard.press("/")
    page.keyboard.type("rus")
    assert page.eval_on_selector_all(
        "#classes li:not([hidden])", "items => items.map((i) => i.dataset.class)"
    ) == ["rust"]
    page.keyboard.press("Enter")
    status_says(page, "SN-M2: fail")
    assert page.input_value("#class-find") == "" and page.locator("#classes li:not([hidden])").count() == 12
    # the twelfth by a click, then F
    showing(page, "SN-M3")
    page.click('#classes li[data-class="warp"]')
    assert chosen_classes(page) == ["warp"]
    page.keyboard.press("f")
    status_says(page, "SN-M3: fail")
    # a name that matches nothing picks nothing; Esc clears the finder and the keys work again
    showing(page, "SN-M4")
    page.keyboard.press("/")
    page.keyboard.type("zinc")
    page.keyboard.press("Enter")
    assert chosen_classes(page) == [] and page.inner_text("#unit-serial") == "SN-M4"
    page.keyboard.press("Escape")
    page.keyboard.press("3")
    page.keyboard.press("f")
    status_says(page, "SN-M4: fail")
    recorded = dict(
        DecisionEvent.objects.filter(decided_by_user__username="ines").values_list(
            "unit__serial", "defect_classes"
        )
    )
    assert recorded == {"SN-M1": ["lint"], "SN-M2": ["rust"], "SN-M3": ["warp"], "SN-M4": ["stain"]}
    context.close()
