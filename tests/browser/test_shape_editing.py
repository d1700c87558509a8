"""Editing shapes in Chromium, as CVAT and Label Studio users expect: a box's handles resize it and
its body moves it, polygon vertices are moved, added and removed, the eraser rubs out any class,
shapes are hidden (and still sent), undo and redo cover all of it, an image-level class is a label
without drawing, a pen draws, the station's own regions are edited the same way, and the pages
fit 1024 and 768 px wide screens. Positions are checked in the 1920x1080 image's own pixels, in
what reached the database.
"""

from __future__ import annotations

import re

import pytest
from PIL import Image

from inspection.models import DecisionEvent, Prediction
from labeling.models import Annotation, LabelSubmission
from labeling.selectors import item_sample
from tests.browser.conftest import sign_in
from tests.browser.test_labeling_page import (
    READY,
    decided_unit_task,
    drag,
    open_page,
    showing_task,
    status_says,
)
from tests.browser.test_labeling_page import (
    click as click_image,
)
from tests.browser.test_labeling_page import (
    inspector as inspector,  # noqa: F401 (a fixture)
)
from tests.browser.test_labeling_page import (
    on_screen as labeling_on_screen,
)
from tests.browser.test_labeling_page import (
    station as station,  # noqa: F401 (a fixture)
)
from tests.browser.test_station_page import Line, showing
from tests.inspection.factories import jpeg_bytes, person

pytestmark = pytest.mark.django_db(transaction=True)

HD = {"width": 1920, "height": 1080}
TOLERANCE = 3.0  # image pixels: a screen pixel is about 1.8 of them at the fitted zoom


def hd_task(station, inspector, serial: str, seed: int):
    return decided_unit_task(
        station, inspector, serial, image=jpeg_bytes(seed, **HD), regions=[], human_regions=()
    )


def submitted(task) -> list[Annotation]:
    submission = LabelSubmission.objects.get(task=task)
    return list(submission.annotations.order_by("id"))


def shapes(page) -> list[dict]:
    return page.evaluate("window.loupeLabeling.shapes()")


def assert_near(actual, expected, tolerance=TOLERANCE):
    assert len(actual) == len(expected), (actual, expected)
    for a, e in zip(actual, expected, strict=True):
        assert abs(a - e) <= tolerance, (actual, expected)


def box_of(geometry: dict) -> list[float]:
    return [geometry["x"], geometry["y"], geometry["width"], geometry["height"]]


def test_boxes_and_polygons_are_edited_over_several_tasks_and_sent_in_original_pixels(
    asgi_server, browser, station, inspector
):
    # given three 1920x1080 tasks, claimed one after the other
    tasks = [hd_task(station, inspector, f"SN-E{n}", seed=n) for n in range(3)]
    person("lena", "labeler")
    context, page = open_page(browser, asgi_server, "lena", f"/labeling/{station.slug}/")
    try:
        first, second, third = sorted(tasks, key=lambda t: t.pk)  # same tier: oldest first
        # the page claims its first task after it loads: wait for it before asking which it is
        page.wait_for_function(f"() => {READY}", timeout=15_000)
        showing_task(page, page.evaluate("window.loupeLabeling.current().task"))
        order = []
        for _ in range(3):
            task = page.evaluate("window.loupeLabeling.current().task")
            order.append(task)
            if len(order) == 1:
                # a box drawn, selected, moved by its body, resized by two handles
                drag(page, (400, 300), (800, 500))
                assert_near(box_of(shapes(page)[0]["geometry"]), [400, 300, 400, 200])
                page.keyboard.press("v")
                drag(page, (600, 400), (700, 450))  # the body: +100, +50
                assert_near(box_of(shapes(page)[0]["geometry"]), [500, 350, 400, 200])
                drag(page, (900, 550), (1000, 700))  # the se corner
                assert_near(box_of(shapes(page)[0]["geometry"]), [500, 350, 500, 350])
                drag(page, (500, 525), (450, 525))  # the w edge's middle: only x moves
                assert_near(box_of(shapes(page)[0]["geometry"]), [450, 350, 550, 350])
                page.keyboard.press("Enter")
                status_says(page, f"Task #{task}: 1 region sent")
            elif len(order) == 2:
                # a polygon clicked, then a vertex dragged, one added on an edge, one removed
                page.keyboard.press("g")
                for point in [(1000, 200), (1400, 200), (1400, 600), (1000, 600)]:
                    click_image(page, *point)
                page.keyboard.press("Enter")
                page.keyboard.press("v")
                click_image(page, 1200, 400)  # selects it: its vertices show
                assert page.locator("#overlay .edit-handles .vertex").count() == 4
                drag(page, (1400, 200), (1500, 150))  # vertex 1
                drag(page, (1200, 600), (1200, 700))  # the bottom edge's middle: a new vertex
                points = shapes(page)[0]["geometry"]["points"]
                assert len(points) == 5
                page.mouse.click(*labeling_on_screen(page, 1000, 200), button="right")  # vertex 0
                points = shapes(page)[0]["geometry"]["points"]
                assert len(points) == 4
                page.keyboard.press("Enter")
                status_says(page, f"Task #{task}: 1 region sent")
            else:
                # the whole image as class 2 ("scratch"), without drawing; Ctrl+Z, Ctrl+Y
                page.keyboard.press("2")
                page.keyboard.press("w")
                assert [(s["kind"], s["label"]) for s in shapes(page)] == [("class", "scratch")]
                page.keyboard.press("Control+z")
                assert shapes(page) == []
                page.keyboard.press("Control+y")
                assert [s["kind"] for s in shapes(page)] == ["class"]
                assert "scratch (whole image)" in page.locator("#shapes").inner_text()
                page.keyboard.press("Enter")
                status_says(page, f"Task #{task}: 1 region sent")
            if len(order) < 3:
                page.wait_for_function(
                    f"() => {READY} && window.loupeLabeling.current().task !== {task}", timeout=15_000
                )
        assert order == [first.pk, second.pk, third.pk]
    finally:
        context.close()

    (box,) = submitted(first)
    assert box.kind == "box" and box.label == "crack"
    assert_near(box_of(box.geometry), [450, 350, 550, 350])
    (polygon,) = submitted(second)
    assert polygon.kind == "polygon"
    expected = [(1500, 150), (1400, 600), (1200, 700), (1000, 600)]
    got = polygon.geometry["points"]
    assert_near([c for p in got for c in p], [c for p in expected for c in p])
    (whole,) = submitted(third)
    assert (whole.kind, whole.label, whole.geometry) == ("class", "scratch", {})


def test_undo_and_redo_cover_every_edit_hidden_shapes_are_sent_and_the_eraser_rubs_out_any_class(
    asgi_server, browser, station, inspector
):
    task = hd_task(station, inspector, "SN-U", seed=7)
    person("lena", "labeler")
    context, page = open_page(browser, asgi_server, "lena", f"/labeling/{station.slug}/")
    try:
        showing_task(page, task.pk)
        drag(page, (200, 200), (600, 500))
        page.keyboard.press("v")
        drag(page, (400, 350), (500, 400))  # moved
        drag(page, (700, 550), (800, 650))  # resized by the se corner
        page.keyboard.press("2")  # relabelled (it is selected)
        assert shapes(page)[0]["label"] == "scratch"
        # undo: class, resize, move; redo: move, resize
        page.keyboard.press("Control+z")
        assert shapes(page)[0]["label"] == "crack"
        page.keyboard.press("Control+z")
        assert_near(box_of(shapes(page)[0]["geometry"]), [300, 250, 400, 300])
        page.keyboard.press("z")
        assert_near(box_of(shapes(page)[0]["geometry"]), [200, 200, 400, 300])
        page.keyboard.press("Control+Shift+z")
        page.keyboard.press("Control+y")
        assert_near(box_of(shapes(page)[0]["geometry"]), [300, 250, 500, 400])
        # hidden from the list: not drawn, still listed, still sent; undo shows it again
        page.locator("#shapes li .eye").first.click()
        assert shapes(page)[0]["hidden"] is True
        assert page.locator("#layer-shapes .shape").count() == 0
        page.keyboard.press("z")
        assert page.locator("#layer-shapes .shape").count() == 1
        page.keyboard.press("Control+y")
        assert page.locator("#layer-shapes .shape").count() == 0
        # delete and its undo: a second box, deleted, back
        page.keyboard.press("b")
        drag(page, (1200, 600), (1400, 800))
        page.locator("#shapes li").nth(1).click()  # the list selects
        assert page.evaluate("window.loupeLabeling.selected()") == 1
        page.keyboard.press("Delete")
        assert len(shapes(page)) == 1
        page.keyboard.press("z")
        assert len(shapes(page)) == 2
        # brush paint in two classes, then one eraser stroke across both
        page.keyboard.press("m")
        for _ in range(4):
            page.keyboard.press("]")  # 16 px: 39 px
        page.keyboard.press("1")
        drag(page, (1000, 200), (1300, 200))
        page.keyboard.press("2")
        drag(page, (1000, 300), (1300, 300))
        assert sorted(page.evaluate("window.loupeLabeling.masks()")) == ["crack", "scratch"]
        painted = page.evaluate(MASK_AREAS)
        page.keyboard.press("e")
        drag(page, (1150, 120), (1150, 380))  # a vertical stroke through both
        erased = page.evaluate(MASK_AREAS)
        assert all(erased[name] < painted[name] for name in painted), (painted, erased)
        page.keyboard.press("z")
        assert page.evaluate(MASK_AREAS) == painted
        page.keyboard.press("Control+y")
        assert page.evaluate(MASK_AREAS) == erased
        # a triangle keeps its 3 vertices; Delete then removes the selected shape
        page.keyboard.press("g")
        for point in [(1500, 800), (1700, 800), (1600, 950)]:
            click_image(page, *point)
        page.keyboard.press("Enter")
        page.keyboard.press("v")
        click_image(page, 1600, 850)
        page.mouse.click(*labeling_on_screen(page, 1500, 800), button="right")
        status_says(page, "A polygon keeps at least 3 points")
        assert len(shapes(page)[-1]["geometry"]["points"]) == 3
        page.keyboard.press("Delete")
        assert [s["kind"] for s in shapes(page)] == ["box", "box"]
        page.keyboard.press("Enter")
        status_says(page, f"Task #{task.pk}: 4 regions sent")
    finally:
        context.close()
    rows = submitted(task)
    assert [(a.kind, a.label) for a in rows] == [
        ("box", "crack"),
        ("box", "scratch"),  # drawn after "2"
        ("mask", "crack"),
        ("mask", "scratch"),
    ]
    assert_near(box_of(rows[0].geometry), [300, 250, 500, 400])  # the hidden one, sent
    for mask in rows[2:]:
        with mask.mask.open("rb") as file:
            pixels = Image.open(file).convert("L")
            # the eraser's vertical stroke at x = 1150 left a gap in each class's horizontal line
            y = 200 if mask.label == "crack" else 300
            assert pixels.getpixel((1050, y)) == 255 and pixels.getpixel((1150, y)) == 0


MASK_AREAS = """() => Object.fromEntries([...document.querySelectorAll('#masks canvas')].map((canvas) => {
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] >= 128) painted++;
  return [canvas.dataset.class, painted];
}))"""


def pen_stroke(page, points: list[tuple[float, float]]) -> None:
    """A pen on a tablet, through Chromium's input pipeline (pointerType "pen")."""
    session = page.context.new_cdp_session(page)
    x, y = points[0]
    base = {"button": "left", "pointerType": "pen", "clickCount": 1}
    session.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y, "pointerType": "pen"})
    session.send("Input.dispatchMouseEvent", {"type": "mousePressed", "x": x, "y": y, "buttons": 1, **base})
    for x, y in points[1:]:
        session.send(
            "Input.dispatchMouseEvent",
            {"type": "mouseMoved", "x": x, "y": y, "buttons": 1, "button": "left", "pointerType": "pen"},
        )
    session.send("Input.dispatchMouseEvent", {"type": "mouseReleased", "x": x, "y": y, "buttons": 0, **base})
    session.detach()


def test_a_pen_draws_and_moves_a_box_through_pointer_events(asgi_server, browser, station, inspector):
    task = hd_task(station, inspector, "SN-PEN", seed=8)
    person("lena", "labeler")
    context, page = open_page(browser, asgi_server, "lena", f"/labeling/{station.slug}/")
    try:
        showing_task(page, task.pk)
        page.evaluate(
            """() => { window.penEvents = [];
            document.getElementById('viewport').addEventListener('pointerdown',
              (e) => window.penEvents.push(e.pointerType)); }"""
        )
        assert page.eval_on_selector("#viewport", "v => getComputedStyle(v).touchAction") == "none"
        line = lambda a, b: [  # noqa: E731
            labeling_on_screen(page, a[0] + (b[0] - a[0]) * t / 8, a[1] + (b[1] - a[1]) * t / 8)
            for t in range(9)
        ]
        pen_stroke(page, line((300, 300), (700, 600)))
        assert page.evaluate("window.penEvents") == ["pen"]
        assert_near(box_of(shapes(page)[0]["geometry"]), [300, 300, 400, 300])
        page.keyboard.press("v")
        pen_stroke(page, line((500, 450), (600, 500)))
        assert_near(box_of(shapes(page)[0]["geometry"]), [400, 350, 400, 300])
        page.keyboard.press("Enter")
        status_says(page, f"Task #{task.pk}: 1 region sent")
    finally:
        context.close()
    (box,) = submitted(task)
    assert_near(box_of(box.geometry), [400, 350, 400, 300])


def finger_drag(page, points: list[tuple[float, float]]) -> None:
    """A finger on a touch screen, through Chromium's input pipeline (pointerType "touch")."""
    session = page.context.new_cdp_session(page)
    (x, y), rest = points[0], points[1:]
    session.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for x, y in rest:
        session.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    session.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    session.detach()


def test_a_finger_draws_a_box_and_paints_on_a_touch_screen(asgi_server, browser, station, inspector):
    task = hd_task(station, inspector, "SN-TOUCH", seed=11)
    person("lena", "labeler")
    context = browser.new_context(viewport={"width": 1024, "height": 768}, has_touch=True)
    page = sign_in(context, asgi_server, "lena")
    page.goto(f"{asgi_server.url}/labeling/{station.slug}/")
    try:
        showing_task(page, task.pk)
        page.evaluate(
            """() => { window.downs = [];
            document.getElementById('viewport').addEventListener('pointerdown',
                (e) => window.downs.push(e.pointerType)); }"""
        )
        stage = page.eval_on_selector("#stage", "s => s.style.transform")
        finger_drag(page, [labeling_on_screen(page, 300 + 50 * t, 300 + 40 * t) for t in range(9)])
        assert page.evaluate("window.downs") == ["touch"]
        assert page.eval_on_selector("#stage", "s => s.style.transform") == stage  # drew, did not scroll
        assert_near(box_of(shapes(page)[0]["geometry"]), [300, 300, 400, 320])
        page.keyboard.press("m")  # the tool from the keyboard: the finger is for the image
        finger_drag(page, [labeling_on_screen(page, 1000 + 40 * t, 700) for t in range(9)])
        assert page.evaluate("window.loupeLabeling.masks()") == ["crack"]
        page.keyboard.press("Enter")
        status_says(page, f"Task #{task.pk}: 2 regions sent")
    finally:
        context.close()
    box, mask = submitted(task)
    assert_near(box_of(box.geometry), [300, 300, 400, 320])
    with mask.mask.open("rb") as file:
        pixels = Image.open(file).convert("L")
        assert pixels.getpixel((1160, 700)) == 255 and pixels.getpixel((1160, 760)) == 0


def test_the_models_class_is_taken_for_the_whole_image_and_a_reviewer_fixes_it(
    asgi_server, browser, station, inspector
):
    # given a task whose model says "fail, scratch" without any region
    task = hd_task(station, inspector, "SN-WHOLE", seed=12)
    Prediction.objects.filter(unit=task.item.unit).update(verdict="fail", label="scratch", regions=[])
    person("lena", "labeler")
    person("rui", "labeler")
    context, page = open_page(browser, asgi_server, "lena", f"/labeling/{station.slug}/")
    try:
        showing_task(page, task.pk)
        assert "fail scratch (whole image)" in page.inner_text("#task-model")
        page.keyboard.press("t")
        assert [(s["kind"], s["label"]) for s in shapes(page)] == [("class", "scratch")]
        page.keyboard.press("w")  # the chosen class (the inspector's crack) beside it
        page.keyboard.press("w")
        status_says(page, "The whole image is crack already")
        page.keyboard.press("Enter")
        status_says(page, f"Task #{task.pk}: 2 regions sent")
    finally:
        context.close()
    assert [(a.kind, a.label) for a in submitted(task)] == [("class", "scratch"), ("class", "crack")]

    # then the reviewer sees both, fixes the label: drops the crack, keeps the scratch
    context, page = open_page(browser, asgi_server, "rui", f"/labeling/{station.slug}/review/")
    try:
        page.wait_for_function(f"() => {READY}", timeout=15_000)
        assert page.inner_text("#submission-summary") == "scratch (whole image), crack (whole image)"
        page.keyboard.press("l")
        page.wait_for_function("() => window.loupeLabeling.shapes().length === 2")
        page.locator("#shapes li", has_text="crack (whole image)").locator(".remove").click()
        page.keyboard.press("Enter")
        status_says(page, "fixed")
    finally:
        context.close()
    fixed = LabelSubmission.objects.get(task=task, fixes__isnull=False)
    assert [(a.kind, a.label, a.active) for a in fixed.annotations.all()] == [("class", "scratch", True)]
    assert item_sample(task.item).classes == ("scratch",)


def station_on_screen(page, x: float, y: float) -> tuple[float, float]:
    box = page.locator("#unit-image").bounding_box()
    return box["x"] + x * box["width"] / 1920, box["y"] + y * box["height"] / 1080


def station_drag(page, start, end) -> None:
    page.mouse.move(*station_on_screen(page, *start))
    page.mouse.down()
    page.mouse.move(*station_on_screen(page, *end), steps=8)
    page.mouse.up()


def test_the_inspectors_own_regions_are_moved_and_resized_and_a_drag_elsewhere_pans(
    asgi_server, browser, make_station
):
    station = make_station(level="assisted")
    person("ines")
    line = Line(asgi_server, station)
    serials = ["SN-R0", "SN-R1"]
    units = [line.post(serial, seed=n, **HD) for n, serial in enumerate(serials)]
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = sign_in(context, asgi_server, "ines")
    try:
        page.goto(f"{asgi_server.url}/stations/{station.slug}/")
        for n in range(len(units)):
            showing(page, serials[n])
            page.click("#classes li[data-class='scratch']")
            page.click("#btn-draw")
            station_drag(page, (400, 300), (800, 600))
            page.click("#btn-draw")  # drawing off: a drag on the region edits it
            station_drag(page, (600, 450), (700, 500))  # moved by +100, +50
            assert page.locator("#overlay .edit-handles .handle").count() == 8
            station_drag(page, (900, 650), (1000, 750))  # the se corner
            transform = page.eval_on_selector("#stage", "s => s.style.transform")
            station_drag(page, (1500, 900), (1400, 850))  # empty image: pans, the region stays
            assert page.eval_on_selector("#stage", "s => s.style.transform") != transform
            assert page.locator("#drafts li").count() == 1
            page.keyboard.press("0")
            page.click("#btn-fail")
            status_says(page, f"{serials[n]}: fail")
    finally:
        context.close()
    for unit in units:
        (region,) = DecisionEvent.objects.get(unit_id=unit["id"]).regions
        assert region["label"] == "scratch"
        assert_near([region["x"], region["y"], region["width"], region["height"]], [500, 350, 500, 400])


def drafts_listed(page) -> int:
    return page.locator("#drafts li").count()


def draft_corners(page) -> list[list[float]]:
    """The top-left corners of the inspector's regions, as the page lists them."""
    return [
        [float(value) for value in re.search(r"at (-?\d+),(-?\d+)", text).groups()]
        for text in page.locator("#drafts li").all_text_contents()
    ]


def test_the_inspectors_region_changes_undo_and_redo_one_by_one_and_start_afresh_per_unit(
    asgi_server, browser, make_station
):
    station = make_station(level="assisted")
    person("ines")
    line = Line(asgi_server, station)
    serials = ["SN-U0", "SN-U1"]
    units = [line.post(serial, seed=20 + n, **HD) for n, serial in enumerate(serials)]
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = sign_in(context, asgi_server, "ines")
    try:
        page.goto(f"{asgi_server.url}/stations/{station.slug}/")
        for serial in serials:
            showing(page, serial)
            page.click("#classes li[data-class='scratch']")
            page.click("#btn-draw")
            station_drag(page, (200, 200), (400, 300))  # the first region
            station_drag(page, (1200, 600), (1500, 800))  # the second
            page.click("#btn-draw")
            assert drafts_listed(page) == 2
            station_drag(page, (300, 250), (400, 350))  # the first moved by +100, +100
            page.keyboard.press("Control+z")  # the move undone
            page.keyboard.press("Control+z")  # the second region undone
            (corner,) = draft_corners(page)
            assert_near(corner, [200, 200])
            page.keyboard.press("Control+y")  # the second region again
            page.keyboard.press("Control+Shift+z")  # and the move again
            first, second = draft_corners(page)
            assert_near(first, [300, 300])
            assert_near(second, [1200, 600])
            station_drag(page, (1350, 700), (1350, 700))  # a press on the second selects it
            page.keyboard.press("Backspace")  # the selected one goes, not the last drawn
            (corner,) = draft_corners(page)
            assert_near(corner, [300, 300])
            page.keyboard.press("z")  # and comes back
            assert drafts_listed(page) == 2
            page.click("#btn-fail")
            status_says(page, f"{serial}: fail")
    finally:
        context.close()
    for unit in units:
        regions = sorted(DecisionEvent.objects.get(unit_id=unit["id"]).regions, key=lambda r: r["x"])
        assert_near(
            [regions[0]["x"], regions[0]["y"], regions[0]["width"], regions[0]["height"]],
            [300, 300, 200, 100],
        )
        assert_near(
            [regions[1]["x"], regions[1]["y"], regions[1]["width"], regions[1]["height"]],
            [1200, 600, 300, 200],
        )


NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"


def reachable(page, selector: str) -> None:
    """The control is on the page within its width and takes a click (after scrolling to it)."""
    element = page.locator(selector)
    element.scroll_into_view_if_needed()
    box = element.bounding_box()
    width = page.evaluate("document.documentElement.clientWidth")
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, (selector, box, width)
    element.click(trial=True)


@pytest.mark.parametrize("width", [1024, 768])
def test_the_labeling_review_and_station_pages_fit_1024_and_768_px_wide_screens(
    asgi_server, browser, station, inspector, width
):
    hd_task(station, inspector, "SN-W", seed=9)
    person("lena", "labeler")
    line = Line(asgi_server, station)
    line.post("SN-LINE", seed=10, **HD)
    viewport = {"width": width, "height": 1024 if width == 768 else 768}
    context, page = open_page(browser, asgi_server, "lena", f"/labeling/{station.slug}/", viewport=viewport)
    try:
        page.wait_for_function(f"() => {READY}", timeout=15_000)
        assert page.evaluate(NO_SIDEWAYS_SCROLL)
        image = page.locator("#item-image").bounding_box()
        assert image["width"] > width * 0.5  # the image keeps most of the width
        for selector in [
            "#tool-box",
            "#tool-select",
            "#btn-whole-image",
            "#btn-redo",
            "#btn-submit",
            "#btn-no-defect",
            "#classes li[data-class='crack']",
        ]:
            reachable(page, selector)
        page.goto(f"{asgi_server.url}/labeling/{station.slug}/review/")
        page.wait_for_selector("#btn-accept")
        assert page.evaluate(NO_SIDEWAYS_SCROLL)
        for selector in ["#btn-accept", "#btn-reject", "#btn-fix"]:
            reachable(page, selector)
    finally:
        context.close()
    context = browser.new_context(viewport=viewport)
    page = sign_in(context, asgi_server, "ines")
    try:
        page.goto(f"{asgi_server.url}/stations/{station.slug}/")
        showing(page, "SN-LINE")
        assert page.evaluate(NO_SIDEWAYS_SCROLL)
        for selector in ["#btn-pass", "#btn-fail", "#btn-draw", "#classes li[data-class='crack']"]:
            reachable(page, selector)
    finally:
        context.close()
