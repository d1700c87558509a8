"""The units' history in Chromium: a supervisor searches the units the line posted at full size,
pages through them, opens several units in a row, checks each one's regions where they are on
the frame, toggles the layers, zooms, and comments; an inspector on a blind unit still waiting
sees nothing of the model.

The frames are posted through the HTTP API at 1920x1080 and 1280x720, and judged by the stain
model (tests/inspection/camera.py), so the model regions are real ones; a person's regions are
recorded through the decision service. Every position is checked in the frame's own pixels.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import requests

from inspection.enums import AutomationLevel, UnitStatus
from inspection.models import DecisionEvent, Prediction, Unit
from inspection.services.decisions import HumanRegion, decision_record
from inspection.services.stations import device_key_create
from tests.browser.conftest import sign_in
from tests.browser.overlay import in_image_pixels
from tests.inspection.camera import encoded, stain_unit
from tests.inspection.factories import person

pytestmark = pytest.mark.django_db(transaction=True)

DOCS = Path(__file__).resolve().parents[2] / "docs"
FRAMES = [  # serial, stain seed, size
    ("HD-1", 1001, (1920, 1080)),
    ("HD-2", 1009, (1280, 720)),
    ("HD-3", 1002, (1920, 1080)),
]
PERSON_REGION = HumanRegion(x=1420.0, y=610.0, width=380.0, height=260.0, label="stain")

# The on-screen rectangles of the regions of a layer, and of the image they are drawn over.
SHAPES_JS = """([image, selector]) => {
  const rect = (element) => {
    const r = element.getBoundingClientRect();
    return { x: r.x, y: r.y, width: r.width, height: r.height };
  };
  const picture = document.querySelector(image);
  return {
    image: rect(picture),
    width: Number(picture.getAttribute("width")),
    height: Number(picture.getAttribute("height")),
    shapes: [...document.querySelectorAll(selector)].map(rect),
  };
}"""


def shapes(page, image: str, selector: str) -> list[dict]:
    found = page.evaluate(SHAPES_JS, [image, selector])
    geometry = {"image": found["image"], "width": found["width"], "height": found["height"]}
    return [in_image_pixels(shape, geometry) for shape in found["shapes"]]


def near(a: dict, b: dict, tolerance: float) -> bool:
    return all(abs(a[key] - b[key]) <= tolerance for key in ("x", "y", "width", "height"))


@pytest.fixture
def line(make_station, make_model_version, stain_bundle, asgi_server):
    """A full-automation station judged by the stain model, and a shadow one (blind), with the
    frames posted through HTTP; HD-1 overruled by a person who marked their own region."""
    champion = make_model_version("stain", 1, threshold=None, bundle=stain_bundle)
    full = make_station(
        slug="screens-full", level=AutomationLevel.FULL, champion=champion, defect_classes=["stain"]
    )
    shadow = make_station(
        slug="screens-shadow", level=AutomationLevel.SHADOW, champion=champion, defect_classes=["stain"]
    )
    posted = {}
    for station, frames in ((full, FRAMES), (shadow, [("SH-1", 1003, (1920, 1080))])):
        _, key = device_key_create(station=station, name="line pc")
        for serial, seed, (width, height) in frames:
            response = requests.post(
                f"{asgi_server.url}/api/v1/units/",
                headers={"Authorization": f"Api-Key {key}"},
                files={
                    "image": (
                        f"{serial}.jpg",
                        encoded(stain_unit(seed).frame(width, height), "JPEG"),
                        "image/jpeg",
                    )
                },
                data={"serial": serial},
                timeout=30,
            )
            assert response.status_code == 201, response.text
            posted[serial] = response.json()
    inspector = person("ines", role="inspector")
    hd1 = Unit.objects.get(pk=posted["HD-1"]["id"])
    decision_record(unit=hd1, user=inspector, verdict="fail", regions=[PERSON_REGION])
    # More units for the pages to page through: the same frame, each its own unit.
    template = Unit.objects.get(pk=posted["HD-3"]["id"])
    extra = [
        Unit(
            **{
                field.attname: getattr(template, field.attname)
                for field in Unit._meta.concrete_fields
                if field.attname not in ("id", "serial", "idempotency_key")
            },
            serial=f"BULK-{index:03}",
        )
        for index in range(50)
    ]
    Unit.objects.bulk_create(extra)
    return full, shadow, posted


def test_a_supervisor_searches_pages_and_reads_several_units_in_a_row(browser, asgi_server, line):
    full, shadow, posted = line
    person("sam", role="supervisor")
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = sign_in(context, asgi_server, "sam")
    page.click("header nav >> text=Units")
    page.wait_for_url(f"{asgi_server.url}/units/")
    # the newest 48 of 54 units, and a way to the older ones
    assert page.locator(".unit-card").count() == 48
    page.click("#older")
    page.wait_for_load_state()
    older = page.locator(".unit-card .card-text strong").all_text_contents()
    assert set(older) == {"BULK-002", "BULK-001", "BULK-000", "HD-3", "HD-2", "HD-1"}
    page.locator(".unit-card").first.wait_for()
    # the person's region is drawn on HD-1's thumbnail where they marked it on the 1920x1080 frame
    hd1 = posted["HD-1"]["id"]
    page.locator(f'.unit-card[data-unit="{hd1}"] img').evaluate("image => image.decode()")
    [drawn] = shapes(page, f'.unit-card[data-unit="{hd1}"] img', f'.unit-card[data-unit="{hd1}"] rect')
    scale = 1920 / page.locator(f'.unit-card[data-unit="{hd1}"] img').bounding_box()["width"]
    assert near(drawn, PERSON_REGION.as_dict(), tolerance=scale), drawn
    page.click("#newer")
    page.wait_for_load_state()
    assert page.locator(".unit-card").count() == 48

    # filter: the full-automation station's units a person decided
    page.select_option("#id_station", full.slug)
    page.select_option("#id_decided_by", "human")
    page.click("#unit-filter button[type=submit]")
    page.wait_for_load_state()
    assert page.locator(".unit-card .card-text strong").all_text_contents() == ["HD-1"]
    page.select_option("#id_decided_by", "")
    page.select_option("#id_verdict", "")
    page.fill("#id_serial", "HD-")
    page.click("#unit-filter button[type=submit]")
    page.wait_for_load_state()
    assert page.locator(".unit-card .card-text strong").all_text_contents() == ["HD-3", "HD-2", "HD-1"]
    if os.environ.get("LOUPE_UPDATE_SCREENSHOTS") == "1":
        page.screenshot(path=str(DOCS / "units-page.png"), full_page=True)

    # three units in a row, from the search's cards
    for serial in ("HD-1", "HD-2", "HD-3"):
        unit = Unit.objects.get(serial=serial)
        page.click(f'.unit-card[data-unit="{unit.pk}"] a')
        page.wait_for_url(f"{asgi_server.url}/units/{unit.pk}/")
        page.locator("#unit-image").evaluate("image => image.decode()")
        prediction = Prediction.objects.get(unit=unit)
        assert prediction.regions, f"the stain model found nothing on {serial}"
        # the model's regions where the model put them, in the frame's pixels, at fit zoom
        drawn = shapes(page, "#unit-image", ".region.model rect")
        assert len(drawn) == len(prediction.regions)
        scale = unit.image_width / page.locator("#unit-image").bounding_box()["width"]
        for region, box in zip(prediction.regions, drawn, strict=True):
            assert near(box, region, tolerance=max(2.0, scale)), (serial, box, region)
        masks = page.locator(".region.model .region-mask").count()
        assert masks == sum(1 for region in prediction.regions if region.get("mask_rle"))
        # the person's layer only where a person drew
        person_regions = shapes(page, "#unit-image", ".region.person rect")
        if serial == "HD-1":
            assert len(person_regions) == 1 and near(
                person_regions[0], PERSON_REGION.as_dict(), max(2.0, scale)
            )
        else:
            assert person_regions == []
        if serial == "HD-1" and os.environ.get("LOUPE_UPDATE_SCREENSHOTS") == "1":
            page.screenshot(path=str(DOCS / "unit-page.png"), full_page=True)
        # the toggles hide and show a layer, and its masks alone
        model_toggle = page.locator("#layers input[data-layer^=model]")
        model_toggle.uncheck()
        assert page.locator(".region.model").count() == 0
        model_toggle.check()
        page.locator("#layers input[data-masks]").uncheck()
        assert page.locator(".region.model").count() == len(prediction.regions)
        assert page.locator(".region-mask").count() == 0
        # zoom: 1:1 is one frame pixel per screen pixel, and the percentage says so
        page.click("#zoom-actual")
        assert page.text_content("#zoom") == "100 %"
        assert abs(page.locator("#unit-image").bounding_box()["width"] - unit.image_width) < 1
        page.keyboard.press("+")  # the keymap's zoom in, as on the station and labeling pages
        assert page.text_content("#zoom") == "125 %"
        drawn = shapes(page, "#unit-image", ".region.model rect")
        for region, box in zip(prediction.regions, drawn, strict=True):
            assert near(box, region, tolerance=1.0), (serial, "zoomed", box, region)
        # the prediction's figures and the story
        facts = page.text_content(".unit-facts")
        assert f"{prediction.defect_probability:.4f}" in facts and f"{prediction.confidence:.4f}" in facts
        kinds = page.locator(".timeline .event").evaluate_all(
            "items => items.map((item) => item.dataset.kind)"
        )
        assert kinds[:3] == ["received", "prediction", "decision"]
        if serial == "HD-1":
            assert "override" in kinds
        # a comment, then back to the search
        page.fill("#comment-body", f"Checked {serial} at the bench.")
        page.click("#comment-form button[type=submit]")
        page.wait_for_url(re.compile(rf"/units/{unit.pk}/#timeline$"))
        last = page.locator(".timeline .event").last
        assert last.get_attribute("data-kind") == "comment"
        assert f"Checked {serial} at the bench." in last.text_content() and "sam" in last.text_content()
        page.go_back()
        page.go_back()
        page.wait_for_url(re.compile(r"/units/\?"))
    context.close()


def test_an_inspector_sees_nothing_of_the_model_on_a_blind_unit_waiting(browser, asgi_server, line):
    _, shadow, posted = line
    person("ivo", role="inspector")
    blind = Unit.objects.get(pk=posted["SH-1"]["id"])
    assert blind.status == UnitStatus.PENDING and blind.blind
    prediction = Prediction.objects.get(unit=blind)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = sign_in(context, asgi_server, "ivo")
    page.goto(f"{asgi_server.url}/stations/{shadow.slug}/units/?view=list")
    assert page.locator("tr[data-unit]").count() == 1
    row = page.text_content(f'tr[data-unit="{blind.pk}"]')
    assert f"{prediction.defect_probability:.3f}" not in row
    page.click(f'tr[data-unit="{blind.pk}"] a >> nth=0')
    page.wait_for_url(f"{asgi_server.url}/units/{blind.pk}/")
    page.locator("#unit-image").evaluate("image => image.decode()")
    assert page.locator(".region").count() == 0
    html = page.content()
    assert f"{prediction.defect_probability:.4f}" not in html and "predicted" not in html.lower()
    assert "hidden" in page.text_content(".unit-facts").lower()
    assert not DecisionEvent.objects.filter(unit=blind).exists()
    context.close()
