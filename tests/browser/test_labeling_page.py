"""The labeling and review pages in Chromium: boxes, polygons and brush masks drawn with the keys
(while zoomed), the model's pre-annotation, "no defect" in one key, the queue order, review
(accept, reject with a comment, fix), two labelers at once, and who may open the pages.

Tasks come from the real flow: the line's unit through `unit_submit`, an inspector's verdict
through `decision_record` (which opens the labeling task and records the verdict as the label).
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from inspection.models import Prediction, Station
from inspection.services.decisions import HumanRegion, decision_record
from inspection.services.units import unit_submit
from labeling.models import (
    Annotation,
    Dataset,
    LabelSubmission,
    LabelTask,
    SubmissionStatus,
    TaskStatus,
    TaskTier,
)
from labeling.work import Shape, label_submit, review_reject
from models_registry.ml.synthetic.config import SyntheticConfig
from models_registry.ml.synthetic.scene import generate_unit
from tests.browser.conftest import sign_in
from tests.browser.overlay import (
    assert_covers,
    assert_mask_drawn_over_its_cells,
    expected_mask_pixels,
    in_image_pixels,
    masked_region,
    overlay_geometry,
    screen_scale,
    screenshot,
    wait_until_painted,
)
from tests.inspection.factories import jpeg_bytes, person

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "labeling-page.png"
WIDTH, HEIGHT = 640, 360
REGIONS = [
    {"x": 60, "y": 40, "width": 90, "height": 30, "label": "crack", "score": 0.91},
    {"x": 420, "y": 200, "width": 60, "height": 50, "label": "scratch", "score": 0.62},
]
READY = "window.loupeLabeling && window.loupeLabeling.ready()"


@pytest.fixture
def station(make_station, make_model_version) -> Station:
    """Partial automation with no certified threshold: the model decides nothing alone, every unit
    is deferred to an inspector. No random slice, so the queue order is the usefulness order."""
    return make_station(level="partial", champion=make_model_version(threshold=None), label_random_share=0.0)


@pytest.fixture
def inspector():
    return person("ines")


def decided_unit_task(
    station: Station,
    inspector,
    serial: str,
    *,
    verdict: str = "fail",
    model_verdict: str | None = None,
    defect_probability: float = 0.6,
    regions: list[dict] = REGIONS,
    image: bytes | None = None,
    human_regions: tuple[HumanRegion, ...] = (),
    seed: int = 0,
) -> LabelTask:
    """A unit posted by the line, its prediction set to known regions, then decided by a person."""
    station.refresh_from_db()
    image = image or jpeg_bytes(seed, width=WIDTH, height=HEIGHT)
    unit = unit_submit(station=station, serial=serial, image_data=image, filename="unit.jpg").unit
    Prediction.objects.filter(unit=unit).update(
        verdict=model_verdict or verdict, regions=regions, defect_probability=defect_probability
    )
    decision_record(
        unit=unit,
        user=inspector,
        verdict=verdict,
        defect_classes=("crack",) if verdict == "fail" and not human_regions else (),
        regions=human_regions,
    )
    return LabelTask.objects.get(item__unit=unit)


def open_page(browser, server, username: str, path: str, *, viewport=None):
    context = browser.new_context(viewport=viewport or {"width": 1400, "height": 860})
    page = sign_in(context, server, username)
    page.goto(f"{server.url}{path}")
    return context, page


def showing_task(page, task_id: int) -> None:
    page.wait_for_function(
        f"() => {READY} && window.loupeLabeling.current().task === {task_id}", timeout=15_000
    )


def on_screen(page, x: float, y: float) -> tuple[float, float]:
    """The screen point of image pixel (x, y), wherever zoom and pan have put the image."""
    width, height = page.eval_on_selector("#item-image", "image => [image.width, image.height]")
    box = page.locator("#item-image").bounding_box()
    return box["x"] + x * box["width"] / width, box["y"] + y * box["height"] / height


def drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*on_screen(page, *start))
    page.mouse.down()
    page.mouse.move(*on_screen(page, *end), steps=8)
    page.mouse.up()


def click(page, x: float, y: float) -> None:
    page.mouse.click(*on_screen(page, x, y))


def status_says(page, text: str) -> None:
    page.wait_for_function(
        f"() => document.getElementById('status').textContent.includes({text!r})", timeout=15_000
    )


def mask_pixels(annotation: Annotation) -> np.ndarray:
    with annotation.mask.open("rb") as file, Image.open(file) as mask:
        return np.asarray(mask.convert("L"))


def test_a_box_drawn_while_zoomed_and_panned_is_sent_in_image_pixels_with_the_chosen_class(
    asgi_server, browser, station, inspector
):
    # given a task from an inspector's "crack" verdict, and a labeler on the labeling page
    task = decided_unit_task(station, inspector, "SN-BOX")
    person("lena", "labeler")
    context, page = open_page(browser, asgi_server, "lena", f"/labeling/{station.slug}/")
    showing_task(page, task.id)
    assert page.inner_text("#task-current") == "crack (whole image) · the inspector's verdict"
    # when she picks class 2 and the box tool with the keys, zooms in with the keys and the
    # wheel, pans with an arrow, a drag with Space held and one with the middle button, and drags
    page.keyboard.press("2")
    page.keyboard.press("b")
    fitted = page.evaluate("window.loupeLabeling.view()")
    page.keyboard.press("+")
    page.keyboard.press("+")
    page.keyboard.press("ArrowLeft")
    page.mouse.move(*on_screen(page, 320, 180))
    page.mouse.wheel(0, -100)
    zoomed = page.evaluate("window.loupeLabeling.view()")
    assert zoomed["zoom"] == pytest.approx(fitted["zoom"] * 1.25**2 * 1.15)
    page.keyboard.down(" ")
    page.mouse.down()
    page.mouse.move(*on_screen(page, 300, 170), steps=4)  # the image follows the mouse
    page.mouse.up()
    page.keyboard.up(" ")
    page.mouse.down(button="middle")
    page.mouse.move(*on_screen(page, 330, 175), steps=4)
    page.mouse.up(button="middle")
    panned = page.evaluate("window.loupeLabeling.view()")
    assert panned["zoom"] == zoomed["zoom"] and panned["panX"] != zoomed["panX"]
    assert page.locator("#shapes li.muted").count() == 1  # panning drew nothing
    drag(page, (280, 150), (360, 210))
    assert page.locator("#shapes li").count() == 1
    page.keyboard.press("0")  # fit the whole image again
    assert page.evaluate("window.loupeLabeling.view()") == fitted
    page.keyboard.press("Enter")
    status_says(page, "sent for review")
    # then a pending submission holds that box, in image pixels, in class 2
    submission = LabelSubmission.objects.get(task=task)
    assert submission.status == SubmissionStatus.PENDING and submission.author.username == "lena"
    (box,) = submission.annotations.all()
    assert (box.kind, box.label, box.active) == ("box", "scratch", False)
    geometry = box.geometry
    assert geometry["x"] == pytest.approx(280, abs=1) and geometry["y"] == pytest.approx(150, abs=1)
    assert geometry["width"] == pytest.approx(80, abs=1) and geometry["height"] == pytest.approx(60, abs=1)
    assert LabelTask.objects.get(pk=task.pk).status == TaskStatus.IN_REVIEW
    context.close()


def test_a_polygon_and_a_brush_mask_are_sent_as_drawn(asgi_server, browser, station, inspector):
    task = decided_unit_task(station, inspector, "SN-POLY")
    person("lena", "labeler")
    context, page = open_page(browser, asgi_server, "lena", f"/labeling/{station.slug}/")
    showing_task(page, task.id)
    # a polygon given up with Esc leaves nothing
    page.keyboard.press("g")
    click(page, 100, 100)
    click(page, 150, 100)
    page.keyboard.press("Escape")
    assert page.evaluate("window.loupeLabeling.shapes().length") == 0
    # a polygon closed by a click on its first point, in class 1
    page.keyboard.press("1")
    corners = [(100, 100), (200, 90), (220, 180), (120, 200)]
    for x, y in corners:
        click(page, x, y)
    click(page, *corners[0])
    (polygon,) = page.evaluate("window.loupeLabeling.shapes()")
    assert polygon["kind"] == "polygon" and len(polygon["geometry"]["points"]) == 4
    # a brush stroke in class 2, with a larger brush, then a box undone with Z
    page.keyboard.press("m")
    page.keyboard.press("]")
    page.keyboard.press("2")
    assert page.inner_text("#brush-size") == "20"
    drag(page, (400, 100), (520, 100))
    page.keyboard.press("b")
    drag(page, (300, 250), (350, 300))
    assert page.locator("#shapes li").count() == 3  # polygon, box, scratch mask
    page.keyboard.press("z")
    assert page.locator("#shapes li").count() == 2
    page.keyboard.press("Enter")
    status_says(page, "2 regions sent for review")
    submission = LabelSubmission.objects.get(task=task)
    polygon_row, mask_row = submission.annotations.order_by("id")
    assert (polygon_row.kind, polygon_row.label) == ("polygon", "crack")
    for (x, y), (sent_x, sent_y) in zip(corners, polygon_row.geometry["points"], strict=True):
        assert sent_x == pytest.approx(x, abs=1) and sent_y == pytest.approx(y, abs=1)
    assert (mask_row.kind, mask_row.label) == ("mask", "scratch")
    pixels = mask_pixels(mask_row)
    assert pixels.shape == (HEIGHT, WIDTH)
    # painted along the stroke, about the brush's 20 px wide, and nowhere else
    assert pixels[100, 400:521].min() > 0 and pixels[91:110, 460].min() > 0
    assert pixels[:, :385].max() == 0 and pixels[125:, :].max() == 0 and pixels[:75, :].max() == 0
    context.close()


def test_n_sends_no_defect_at_once_and_the_next_task_follows(asgi_server, browser, station, inspector):
    first = decided_unit_task(station, inspector, "SN-N1", model_verdict="pass")  # a disagreement: first
    second = decided_unit_task(station, inspector, "SN-N2", seed=1)
    person("lena", "labeler")
    context, page = open_page(browser, asgi_server, "lena", f"/labeling/{station.slug}/")
    showing_task(page, first.id)
    page.keyboard.press("n")
    showing_task(page, second.id)
    submission = LabelSubmission.objects.get(task=first)
    assert submission.no_defect
    assert list(submission.annotations.values_list("kind", "active")) == [("no_defect", False)]
    # over a drawing, N asks twice before throwing the drawing away
    page.keyboard.press("b")
    drag(page, (100, 100), (160, 150))
    page.keyboard.press("n")
    status_says(page, "press N again")
    assert not LabelSubmission.objects.filter(task=second).exists()
    page.keyboard.press("n")
    status_says(page, "no defect sent for review")
    assert LabelSubmission.objects.get(task=second).no_defect
    context.close()


def test_the_models_regions_are_taken_one_by_a_click_or_all_with_t(asgi_server, browser, station, inspector):
    task = decided_unit_task(station, inspector, "SN-MODEL")
    person("lena", "labeler")
    context, page = open_page(browser, asgi_server, "lena", f"/labeling/{station.slug}/")
    showing_task(page, task.id)
    assert page.locator(".region.model").count() == 2
    assert "2 regions" in page.inner_text("#task-model")
    # a click on the second region takes just that one; T takes the rest
    click(page, 450, 225)
    assert page.locator(".region.model").count() == 1
    assert [shape["label"] for shape in page.evaluate("window.loupeLabeling.shapes()")] == ["scratch"]
    page.keyboard.press("t")
    assert page.locator(".region.model").count() == 0
    assert page.locator(".shape.box").count() == 2
    page.keyboard.press("Enter")
    status_says(page, "sent for review")
    sent = sorted(
        (row.label, row.geometry) for row in LabelSubmission.objects.get(task=task).annotations.all()
    )
    assert sent == sorted(
        (region["label"], {key: float(region[key]) for key in ("x", "y", "width", "height")})
        for region in REGIONS
    )
    context.close()


def test_the_servers_refusals_are_shown_and_a_task_taken_elsewhere_is_left(
    asgi_server, browser, station, inspector
):
    first = decided_unit_task(station, inspector, "SN-R1", model_verdict="pass")
    second = decided_unit_task(station, inspector, "SN-R2", seed=1)
    person("lena", "labeler")
    context, page = open_page(browser, asgi_server, "lena", f"/labeling/{station.slug}/")
    showing_task(page, first.id)
    # a class the data set no longer has (a supervisor renamed it meanwhile): 400, said as it is
    Dataset.objects.filter(station=station).update(classes=["crack"])
    page.keyboard.press("2")
    page.keyboard.press("b")
    drag(page, (100, 100), (160, 150))
    page.keyboard.press("Enter")
    status_says(page, "Not saved: shape 1 (box): unknown defect class 'scratch' (known: crack)")
    assert page.evaluate("window.loupeLabeling.current().task") == first.id
    # a task labelled by someone else after its claim ran out: 409, and the page moves on
    LabelTask.objects.filter(pk=first.pk).update(claimed_by=None, claim_expires_at=None)
    label_submit(task=first, user=person("lars", "labeler"), no_defect=True)
    page.keyboard.press("n")
    page.keyboard.press("n")
    status_says(page, "it was labelled already: on to the next one")
    showing_task(page, second.id)
    assert list(LabelSubmission.objects.filter(task=first).values_list("author__username", flat=True)) == [
        "lars"
    ]
    context.close()


def test_the_queue_serves_disagreements_first_then_deferred_then_uncertain(
    asgi_server, browser, station, inspector
):
    # given (created in the opposite order) an uncertain unit decided at the assisted level,
    # a deferred one, and one where the inspector and the model disagree
    Station.objects.filter(pk=station.pk).update(automation_level="assisted")
    uncertain = decided_unit_task(station, inspector, "SN-Q1", defect_probability=0.55)
    Station.objects.filter(pk=station.pk).update(automation_level="partial")
    deferred = decided_unit_task(station, inspector, "SN-Q2", seed=1)
    disagreement = decided_unit_task(station, inspector, "SN-Q3", model_verdict="pass", seed=2)
    assert [uncertain.tier, deferred.tier, disagreement.tier] == [
        TaskTier.UNCERTAIN,
        TaskTier.DEFERRED,
        TaskTier.DISAGREEMENT,
    ]
    person("lena", "labeler")
    context = browser.new_context(viewport={"width": 1400, "height": 860})
    page = sign_in(context, asgi_server, "lena")
    # the labeling station list counts them
    page.get_by_role("link", name="Labeling", exact=True).click()
    row = page.locator(f"#labeling-stations tr[data-station='{station.slug}']")
    assert row.locator(".open-tasks").inner_text() == "3"
    row.get_by_role("link", name="Label", exact=True).click()
    # then the page shows the disagreement first, and skipping walks down the queue
    seen = []
    for expected in (disagreement, deferred, uncertain):
        showing_task(page, expected.id)
        seen.append(page.inner_text("#task-why"))
        page.keyboard.press("s")
    assert seen[0].startswith("human and model disagree")
    assert seen[1].startswith("deferred or audited by a person")
    assert seen[2].startswith("model uncertain")
    page.wait_for_function("() => document.querySelectorAll('#fig-reasons li').length === 3")
    reasons = page.locator("#fig-reasons li").all_inner_texts()
    assert reasons == [
        "human and model disagree: 1",
        "deferred or audited by a person: 1",
        "model uncertain: 1",
    ]
    # skipped tasks were given back
    assert not LabelTask.objects.filter(claimed_by__username="lena").exclude(pk=uncertain.pk).exists()
    context.close()


def _pending_label(task: LabelTask, author, *, with_mask: bool = False) -> LabelSubmission:
    shapes = [Shape(kind="box", label="crack", geometry={"x": 50, "y": 60, "width": 100, "height": 40})]
    if with_mask:
        mask = Image.new("L", (WIDTH, HEIGHT))
        ImageDraw.Draw(mask).rectangle((400, 200, 479, 259), fill=255)
        buffer = io.BytesIO()
        mask.save(buffer, "PNG")
        shapes.append(Shape(kind="mask", label="scratch", mask_png=buffer.getvalue()))
    return label_submit(task=task, user=author, shapes=shapes)


def test_a_reviewer_accepts_a_label_and_it_becomes_the_items_label(asgi_server, browser, station, inspector):
    task = decided_unit_task(station, inspector, "SN-ACCEPT")
    submission = _pending_label(task, person("lena", "labeler"))
    person("rita", "labeler")
    # the author is never offered her own label
    context, page = open_page(browser, asgi_server, "lena", f"/labeling/{station.slug}/review/")
    page.wait_for_function("() => !document.getElementById('empty').hidden && window.loupeLabeling.idle()")
    assert "No label is waiting for your review" in page.inner_text("#empty")
    context.close()
    context, page = open_page(browser, asgi_server, "rita", f"/labeling/{station.slug}/review/")
    page.wait_for_function(f"() => {READY} && window.loupeLabeling.current().id === {submission.id}")
    assert page.inner_text("#submission-author") == "lena"
    assert page.inner_text("#submission-summary") == "crack box"
    assert page.locator(".shape.submitted").count() == 1
    assert page.locator(".region.model").count() == 2  # the model's proposal, for comparison
    page.keyboard.press("a")
    status_says(page, "accepted")
    submission.refresh_from_db()
    assert submission.status == SubmissionStatus.ACCEPTED and submission.reviewer.username == "rita"
    assert list(submission.annotations.values_list("kind", "active")) == [("box", True)]
    active = Annotation.objects.filter(item=task.item, active=True)
    assert list(active.values_list("source", flat=True)) == [f"submission:{submission.id}"]
    assert LabelTask.objects.get(pk=task.pk).status == TaskStatus.DONE
    context.close()


def test_a_rejected_label_returns_to_the_labelers_with_the_comment(asgi_server, browser, station, inspector):
    task = decided_unit_task(station, inspector, "SN-REJECT")
    submission = _pending_label(task, person("lena", "labeler"))
    person("rita", "labeler")
    context, page = open_page(browser, asgi_server, "rita", f"/labeling/{station.slug}/review/")
    page.wait_for_function(f"() => {READY} && window.loupeLabeling.current().id === {submission.id}")
    # a rejection without a comment is refused on the page
    page.keyboard.press("r")
    assert page.evaluate("document.activeElement.id") == "reject-comment"
    page.keyboard.press("Enter")
    status_says(page, "needs a comment")
    page.keyboard.type("the scratch at the bottom right is missing")
    page.keyboard.press("Enter")
    status_says(page, "sent back")
    submission.refresh_from_db()
    assert submission.status == SubmissionStatus.REJECTED
    assert submission.review_comment == "the scratch at the bottom right is missing"
    context.close()
    # the task is open again, and its next labeler sees why
    context, page = open_page(browser, asgi_server, "lena", f"/labeling/{station.slug}/")
    showing_task(page, task.id)
    assert page.is_visible("#feedback")
    assert page.inner_text("#feedback-text") == "the scratch at the bottom right is missing"
    context.close()


def test_a_reviewer_fixes_a_label_with_the_drawing_tools(asgi_server, browser, station, inspector):
    task = decided_unit_task(station, inspector, "SN-FIX")
    submission = _pending_label(task, person("lena", "labeler"), with_mask=True)
    person("rita", "labeler")
    context, page = open_page(browser, asgi_server, "rita", f"/labeling/{station.slug}/review/")
    page.wait_for_function(f"() => {READY} && window.loupeLabeling.current().id === {submission.id}")
    assert page.locator(".shape.submitted").count() == 2  # the box and the mask overlay
    # L: the label's box and mask become editable; she deletes the box and draws a scratch box
    page.keyboard.press("l")
    page.wait_for_function("() => window.loupeLabeling.masks().length === 1")
    assert page.evaluate("window.loupeLabeling.shapes().length") == 1
    page.keyboard.press("Backspace")
    page.keyboard.press("2")
    page.keyboard.press("b")
    drag(page, (200, 100), (260, 140))
    page.keyboard.press("Enter")
    status_says(page, "fixed")
    submission.refresh_from_db()
    assert submission.status == SubmissionStatus.FIXED
    fixed = LabelSubmission.objects.get(fixes=submission)
    assert fixed.status == SubmissionStatus.ACCEPTED and fixed.author.username == "rita"
    box, mask = fixed.annotations.order_by("id")
    assert (box.kind, box.label, box.active) == ("box", "scratch", True)
    assert box.geometry["x"] == pytest.approx(200, abs=1)
    assert box.geometry["width"] == pytest.approx(60, abs=1)
    # the mask came through the edit unchanged
    assert (mask.kind, mask.label, mask.active) == ("mask", "scratch", True)
    pixels = mask_pixels(mask)
    painted = np.argwhere(pixels > 0)
    assert painted.min(axis=0).tolist() == [200, 400] and painted.max(axis=0).tolist() == [259, 479]
    context.close()


def test_two_labelers_get_different_tasks(asgi_server, browser, station, inspector):
    tasks = [decided_unit_task(station, inspector, f"SN-TWO-{index}", seed=index) for index in range(4)]
    shown = []
    contexts = []
    for name in ("lena", "lars"):
        person(name, "labeler")
        context, page = open_page(browser, asgi_server, name, f"/labeling/{station.slug}/")
        contexts.append(context)
        page.wait_for_function(f"() => {READY} && window.loupeLabeling.idle()")
        shown.append(page.evaluate("window.loupeLabeling.current().task"))
    assert shown[0] != shown[1] and set(shown) <= {task.id for task in tasks}
    claims = dict(LabelTask.objects.filter(pk__in=shown).values_list("pk", "claimed_by__username"))
    assert claims == {shown[0]: "lena", shown[1]: "lars"}
    for context in contexts:
        context.close()


def test_people_without_the_labeler_role_get_403(asgi_server, browser, station):
    person("ines")  # an inspector
    context = browser.new_context()
    page = sign_in(context, asgi_server, "ines")
    assert page.get_by_role("link", name="Labeling", exact=True).count() == 0
    for path in ("/labeling/", f"/labeling/{station.slug}/", f"/labeling/{station.slug}/review/"):
        assert page.goto(f"{asgi_server.url}{path}").status == 403, path
    context.close()


def trace(mask: np.ndarray, steps: int = 10) -> list[tuple[float, float]]:
    """Points along a thin defect (a scratch's pixel mask), end to end: its painting stroke."""
    ys, xs = np.nonzero(mask)
    points = np.stack([xs, ys], axis=1).astype(float)
    center = points.mean(axis=0)
    axis = np.linalg.svd(points - center, full_matrices=False)[2][0]
    along = (points - center) @ axis
    edges = np.linspace(along.min(), along.max(), steps + 1)
    bins = np.clip(np.digitize(along, edges) - 1, 0, steps - 1)
    return [tuple(points[bins == index].mean(axis=0)) for index in range(steps) if (bins == index).any()]


def test_the_page_shows_the_task_with_its_context_and_every_key(asgi_server, browser, station, inspector):
    # given a 1280x720 unit with three scratches: the model outlined two, the inspector boxed
    # the long one, and a reviewer sent an earlier label back
    scratched = generate_unit(
        np.random.default_rng(29), SyntheticConfig(width=1280, height=720), label="scratch"
    )
    buffer = io.BytesIO()
    scratched.image.convert("RGB").save(buffer, "JPEG", quality=90)
    long_one, lower_left, upper_left = scratched.instances
    regions = [
        {"x": x, "y": y, "width": w, "height": h, "label": "scratch", "score": score}
        for (x, y, w, h), score in ((long_one.box, 0.88), (lower_left.box, 0.64))
    ]
    x, y, w, h = long_one.box
    task = decided_unit_task(
        station,
        inspector,
        "SN-000733",
        regions=regions,
        image=buffer.getvalue(),
        defect_probability=0.71,
        human_regions=(HumanRegion(x=x - 8, y=y - 8, width=w + 16, height=h + 16, label="scratch"),),
    )
    earlier = label_submit(task=task, user=person("lars", "labeler"), no_defect=True)
    review_reject(
        submission=earlier, user=person("rita", "labeler"), comment="scratched: the one at the top left too"
    )
    person("lena", "labeler")
    context, page = open_page(
        browser, asgi_server, "lena", f"/labeling/{station.slug}/", viewport={"width": 1440, "height": 860}
    )
    showing_task(page, task.id)
    page.wait_for_function("() => document.getElementById('fig-open').textContent === '1'")
    # then the page says why the unit is here, its current label, the model's view and the note
    assert page.inner_text("#task-why") == "deferred or audited by a person · margin 0.42"
    assert page.inner_text("#task-current") == "scratch box · the inspector's verdict"
    assert page.inner_text("#task-model") == "fail, score 0.710, 2 regions (tiny:1)"
    assert page.inner_text("#feedback-text") == "scratched: the one at the top left too"
    assert page.locator(".region.current").count() == 1
    assert page.locator(".region.model").count() == 2
    # the help lists every key
    page.keyboard.press("?")
    assert page.is_visible("#help")
    listed = set(page.locator("#help kbd").all_inner_texts())
    every_key = {"1", "9", "B", "G", "M", "E", "V", "[", "]", "⌫", "Z", "T", "C", "Enter", "S", "N"}
    assert every_key | {"+", "−", "0", "H", "?", "Esc", "Space"} <= listed
    page.keyboard.press("Escape")
    assert page.is_hidden("#help")
    # a labeler at work: the model's lower-left box taken with a click, the scratch it missed
    # painted with a smaller brush
    lx, ly, lw, lh = lower_left.box
    click(page, lx + lw / 2, ly + lh / 2)
    page.keyboard.press("2")
    page.keyboard.press("m")
    page.keyboard.press("[")
    page.keyboard.press("[")
    stroke = trace(upper_left.mask)
    page.mouse.move(*on_screen(page, *stroke[0]))
    page.mouse.down()
    for point in stroke[1:]:
        page.mouse.move(*on_screen(page, *point), steps=3)
    page.mouse.up()
    assert page.evaluate("window.loupeLabeling.masks()") == ["scratch"]
    assert [shape["label"] for shape in page.evaluate("window.loupeLabeling.shapes()")] == ["scratch"]
    page.mouse.move(*on_screen(page, 700, 300))
    if os.environ.get("LOUPE_UPDATE_SCREENSHOTS") == "1":
        page.screenshot(path=str(SCREENSHOT))
    context.close()


HD_WIDTH, HD_HEIGHT = 1920, 1080
MASKED_SCRATCH = masked_region(1200.4, 300.2, 297.5, 161.3, label="scratch", score=0.87)


def hd_task(station: Station, inspector, serial: str) -> LabelTask:
    """A 1920x1080 unit whose model proposal is a masked scratch and a crack box (no mask)."""
    image = jpeg_bytes(3, width=HD_WIDTH, height=HD_HEIGHT)
    return decided_unit_task(station, inspector, serial, image=image, regions=[MASKED_SCRATCH, REGIONS[0]])


def test_the_models_boxes_and_mask_lie_over_their_regions_on_a_1920x1080_image_and_h_hides_them(
    asgi_server, browser, station, inspector
):
    # given a 1920x1080 task with a masked model region, and a 640x360 one
    large = hd_task(station, inspector, "SN-HD")
    small = decided_unit_task(station, inspector, "SN-SD", seed=1)
    person("lena", "labeler")
    context, page = open_page(browser, asgi_server, "lena", f"/labeling/{station.slug}/")
    seen = {}
    for _ in range(2):
        page.wait_for_function(f"() => {READY} && window.loupeLabeling.idle()")
        task = page.evaluate("window.loupeLabeling.current().task")
        wait_until_painted(page, "#item-image")
        seen[task] = overlay_geometry(page, "#item-image")
        if task == large.id:
            # then on the large one, mapped back through the image's on-screen rectangle, each box
            # and the mask lie on their regions, the mask over its defect cells; H hides it
            geometry = seen[task]
            masked, plain = geometry["regions"]
            assert_covers(in_image_pixels(masked["box"], geometry), MASKED_SCRATCH)
            assert_covers(in_image_pixels(masked["mask"], geometry), MASKED_SCRATCH)
            assert_covers(in_image_pixels(plain["box"], geometry), REGIONS[0])
            assert plain["mask"] is None
            shown = screenshot(page)
            page.keyboard.press("h")
            assert page.locator(".region.model, .region-mask").count() == 0
            hidden = screenshot(page)
            assert_mask_drawn_over_its_cells(MASKED_SCRATCH, geometry, shown, hidden)
            page.keyboard.press("h")
            assert page.locator(".region-mask").count() == 1
        page.keyboard.press("s")
    assert set(seen) == {large.id, small.id}
    # and the captions are the same size on the screen, the image shown reduced or enlarged
    scales = {task: screen_scale(geometry) for task, geometry in seen.items()}
    assert scales[large.id] < 0.7 and scales[small.id] > 1.2
    for task, geometry in seen.items():
        for region in geometry["regions"]:
            assert region["caption_font_px"] * scales[task] == pytest.approx(13, abs=0.05)
            assert region["stroke_px"] * scales[task] == pytest.approx(2, abs=0.05)
    context.close()


PAINTED_IN_CLASS_JS = """(label) => {
  const canvas = document.querySelector(`.mask-canvas[data-class="${label}"]`);
  if (!canvas) return 0;
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] >= 128) painted++;
  return painted;
}"""


def test_t_takes_a_models_mask_as_a_brush_mask_of_its_class_and_z_gives_it_back(
    asgi_server, browser, station, inspector
):
    # given a 1920x1080 task whose model proposal is a masked scratch and a crack box
    task = hd_task(station, inspector, "SN-TAKE")
    person("lena", "labeler")
    context, page = open_page(browser, asgi_server, "lena", f"/labeling/{station.slug}/")
    showing_task(page, task.id)
    # when she takes the model's regions: the scratch as brush paint, the crack as a box
    page.keyboard.press("t")
    status_says(page, "Took 1 model region as a box and 1 model mask as brush paint")
    assert page.evaluate("window.loupeLabeling.masks()") == ["scratch"]
    assert [shape["label"] for shape in page.evaluate("window.loupeLabeling.shapes()")] == ["crack"]
    assert page.locator(".region.model").count() == 0
    assert page.evaluate(PAINTED_IN_CLASS_JS, "scratch") > 0
    # Z gives both back in one step; T takes them again
    page.keyboard.press("z")
    assert page.evaluate(PAINTED_IN_CLASS_JS, "scratch") == 0
    assert page.evaluate("window.loupeLabeling.shapes()") == []
    assert page.locator(".region.model").count() == 2
    page.keyboard.press("t")
    page.keyboard.press("Enter")
    status_says(page, "2 regions sent for review")
    # then the submitted mask is the model's cells, scaled onto its box at the image's resolution
    box, mask = LabelSubmission.objects.get(task=task).annotations.order_by("id")
    assert (box.kind, box.label, mask.kind, mask.label) == ("box", "crack", "mask", "scratch")
    pixels = mask_pixels(mask) > 0
    assert pixels.shape == (HD_HEIGHT, HD_WIDTH)
    expected, either = expected_mask_pixels(MASKED_SCRATCH, HD_WIDTH, HD_HEIGHT)
    assert expected.sum() > 5000
    assert (pixels == expected)[~either].all()
    context.close()


def shown_keys(page) -> list[str]:
    return sorted(set(page.locator("#help-keys kbd").all_inner_texts()))


def test_the_help_shows_exactly_the_keys_each_mode_handles_and_the_zoom_is_in_image_pixels(
    asgi_server, browser, station, inspector
):
    # given a 1920x1080 task waiting for a label and another's label waiting for review
    task = hd_task(station, inspector, "SN-KEYS")
    submission = _pending_label(decided_unit_task(station, inspector, "SN-KEYS-2"), person("lars", "labeler"))
    person("lena", "labeler")
    context, page = open_page(browser, asgi_server, "lena", f"/labeling/{station.slug}/")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    showing_task(page, task.id)
    # the labeling page's help lists what its keys do, and nothing it does not handle
    assert shown_keys(page) == page.evaluate("window.loupeKeys.bound.label")
    assert page.inner_text("#tool-brush kbd") == "M" and page.inner_text("#btn-accept-model kbd") == "T"
    # the zoom in % of the image's own pixels: fitted, then one step in
    rendered = page.locator("#item-image").bounding_box()["width"] / HD_WIDTH
    assert page.inner_text("#zoom-level") == f"{math.floor(rendered * 100 + 0.5)} %"
    page.keyboard.press("+")
    zoomed = page.locator("#item-image").bounding_box()["width"] / HD_WIDTH
    assert zoomed == pytest.approx(rendered * 1.25)
    assert page.inner_text("#zoom-level") == f"{math.floor(zoomed * 100 + 0.5)} %"
    context.close()
    # the review page's help: both its modes' keys; and typing in the reject comment (A, L, S...)
    # triggers none of them
    context, page = open_page(browser, asgi_server, "lena", f"/labeling/{station.slug}/review/")
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.wait_for_function(f"() => {READY} && window.loupeLabeling.current().id === {submission.id}")
    bound = page.evaluate("window.loupeKeys.bound")
    assert shown_keys(page) == sorted(set(bound["review"]) | set(bound["fixing"]))
    assert {"A", "R", "L", "S"} <= set(bound["review"]) and "M" not in bound["review"]
    assert "A" not in bound["fixing"] and {"M", "T", "Enter"} <= set(bound["fixing"])
    page.keyboard.press("r")
    page.wait_for_selector("#reject-comment", state="visible")
    page.fill("#reject-comment", "")
    page.type("#reject-comment", "missing the scratch")
    assert page.input_value("#reject-comment") == "missing the scratch"
    assert page.evaluate("window.loupeLabeling.current().id") == submission.id
    assert LabelSubmission.objects.get(pk=submission.pk).status == SubmissionStatus.PENDING
    assert errors == []
    context.close()
