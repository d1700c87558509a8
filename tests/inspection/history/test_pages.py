"""The units page, the unit page and comments, through HTTP, on frames the size a line camera
sends (1920x1080, and one EXIF-rotated), with positions checked in original pixels."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from inspection.enums import AutomationLevel
from inspection.history.models import UnitComment
from inspection.models import Unit
from inspection.services.decisions import HumanRegion, decision_record
from tests.inspection.camera import encoded, exif_rotated_jpeg, stain_unit
from tests.inspection.factories import person, signed_in, upload

pytestmark = pytest.mark.django_db

FRAME = (1920, 1080)


def post_frame(client, serial: str, seed: int, *, rotated: bool = False) -> dict:
    picture = stain_unit(seed).frame(*FRAME)
    data = exif_rotated_jpeg(picture) if rotated else encoded(picture, "JPEG", quality=90)
    response = client.post("/api/v1/units/", {"serial": serial, "image": upload(data)}, format="multipart")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def stations(make_station, device_client, media_root):
    full = make_station(slug="screens-full", level=AutomationLevel.FULL, defect_classes=["stain"])
    blind = make_station(
        slug="screens-human", level=AutomationLevel.SHADOW, champion=full.champion, defect_classes=["stain"]
    )
    return full, blind, device_client(full), device_client(blind)


def rects(html: str, unit_id: int) -> list[tuple[float, float, float, float]]:
    card = re.search(rf'data-unit="{unit_id}".*?</li>', html, re.S).group(0)
    return [
        tuple(float(value) for value in match)
        for match in re.findall(
            r'<rect[^>]* x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"', card
        )
    ]


def test_the_grid_draws_each_units_regions_in_its_own_pixels_on_a_thumbnail(stations):
    full, blind, full_client, blind_client = stations
    inspector = person()
    shadow = post_frame(blind_client, "SH-1", seed=1)
    decision_record(
        unit=Unit.objects.get(pk=shadow["id"]),
        user=inspector,
        verdict="fail",
        regions=[HumanRegion(x=1500.5, y=800.25, width=300, height=200, label="stain")],
    )
    supervisor = signed_in(person("sam", role="supervisor"))
    page = supervisor.get("/units/")
    assert page.status_code == 200
    html = page.content.decode()
    # the person's region, where they drew it on the 1920x1080 frame
    assert rects(html, shadow["id"]) == [(1500.5, 800.25, 300.0, 200.0)]
    assert 'viewBox="0 0 1920 1080"' in html
    # the thumbnail keeps the frame's proportions, so the regions land where they belong
    thumbnail = supervisor.get(f"/api/v1/units/{shadow['id']}/image?size=thumbnail")
    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/jpeg"
    picture = Image.open(io.BytesIO(b"".join(thumbnail.streaming_content)))
    assert picture.size == (384, 216)
    # a frame stored turned a quarter (EXIF orientation 6) is thumbnailed upright, as shown
    upright = stain_unit(2).frame(*FRAME)
    rotated = post_frame(full_client, "ROT-1", seed=2, rotated=True)
    assert (rotated["width"], rotated["height"]) == FRAME
    thumbnail = supervisor.get(f"/api/v1/units/{rotated['id']}/image?size=thumbnail")
    picture = Image.open(io.BytesIO(b"".join(thumbnail.streaming_content))).convert("L")
    assert picture.size == (384, 216)
    expected = np.asarray(upright.convert("L").resize((384, 216)), np.float64)
    assert np.abs(np.asarray(picture, np.float64) - expected).mean() < 3  # 18 or more if turned
    assert supervisor.get(f"/api/v1/units/{rotated['id']}/image?size=huge").status_code == 400


def test_nothing_of_the_model_shows_on_a_blind_unit_until_a_person_judged_it(stations):
    full, blind, _, blind_client = stations
    waiting = post_frame(blind_client, "SH-2", seed=3)
    unit = Unit.objects.get(pk=waiting["id"])
    prediction = unit.predictions.get()
    inspector = person()
    client = signed_in(inspector)
    score = f"{prediction.defect_probability:.4f}"
    for path in ("/units/", "/units/?view=list", f"/units/{unit.pk}/"):
        html = client.get(path).content.decode()
        assert score not in html and f"{prediction.defect_probability:.3f}" not in html, path
        assert "predicted" not in html.lower(), path
    assert rects(client.get("/units/").content.decode(), unit.pk) == []
    assert "hidden" in client.get(f"/units/{unit.pk}/").content.decode().lower()
    # once judged, the model's view is part of the unit's story
    decision_record(unit=unit, user=inspector, verdict="pass")
    html = client.get(f"/units/{unit.pk}/").content.decode()
    assert score in html and "predicted" in html


def test_the_unit_page_tells_the_whole_story_in_order(stations, make_model_version):
    full, _, full_client, _ = stations
    body = post_frame(full_client, "FULL-1", seed=4)
    unit = Unit.objects.get(pk=body["id"])
    model_verdict = body["decision"]
    inspector = person()
    flipped = "pass" if model_verdict == "fail" else "fail"
    regions = [HumanRegion(x=100, y=120, width=400, height=300, label="stain")] if flipped == "fail" else []
    decision_record(unit=unit, user=inspector, verdict=flipped, regions=regions)
    client = signed_in(person("sam", role="supervisor"))
    assert (
        client.post(
            f"/units/{unit.pk}/comments/", {"body": "  Checked the fixture: lens was dusty. "}
        ).status_code
        == 302
    )
    html = client.get(f"/units/{unit.pk}/").content.decode()
    kinds = re.findall(r'<li class="event (\w+)" data-kind="\w+">', html)
    assert kinds[0] == "received" and kinds[1:3] == ["prediction", "decision"]
    assert "override" in kinds and "disagreement" in kinds and kinds[-1] == "comment"
    assert kinds.index("override") < kinds.index("disagreement") < kinds.index("comment")
    assert "Checked the fixture: lens was dusty." in html
    assert "Full automation" in html and "the model decided" in html  # the policy, in words
    assert f"Disagreement: the person said {flipped}, the model {model_verdict}" in html
    # the prediction's details: score, calibrated confidence, class scores, the threshold in force
    prediction = unit.predictions.get()
    assert f"{prediction.defect_probability:.4f}" in html and f"{prediction.confidence:.4f}" in html
    assert "threshold in force" in html
    for name in prediction.class_scores:
        assert f"<td>{name}</td>" in html


def test_a_comment_needs_text_and_a_role(stations):
    full, _, full_client, _ = stations
    unit_id = post_frame(full_client, "FULL-2", seed=5)["id"]
    labeler = signed_in(person("lea", role="labeler"))
    response = labeler.post(f"/units/{unit_id}/comments/", {"body": "   "})
    assert response.status_code == 400 and "a comment needs some text" in response.content.decode()
    response = labeler.post(f"/units/{unit_id}/comments/", {"body": "x" * 2001})
    assert response.status_code == 400 and "at most 2000 characters" in response.content.decode()
    assert not UnitComment.objects.exists()
    from django.contrib.auth.models import User

    nobody = signed_in(User.objects.create_user("nobody"))
    assert nobody.post(f"/units/{unit_id}/comments/", {"body": "hello"}).status_code == 403
    assert labeler.post(f"/units/{unit_id}/comments/", {"body": "looks fine"}).status_code == 302
    comment = UnitComment.objects.get()
    assert (comment.author.username, comment.body) == ("lea", "looks fine")
    assert labeler.post("/units/999999/comments/", {"body": "where"}).status_code == 404


def test_the_units_page_says_what_is_wrong_with_a_filter_and_pages_by_cursor(stations):
    full, _, full_client, _ = stations
    for index in range(3):
        post_frame(full_client, f"P-{index}", seed=10 + index)
    client = signed_in(person("sam", role="supervisor"))
    response = client.get("/units/?verdict=maybe&received_from=soon")
    assert response.status_code == 400
    html = response.content.decode()
    assert "Select a valid choice" in html and "Enter a valid date/time" in html
    response = client.get("/units/?cursor=not-a-cursor")
    assert response.status_code == 400 and "cursor is not one of this server" in response.content.decode()
    # the station's own page of units keeps the station in every link
    html = client.get(f"/stations/{full.slug}/units/?view=list").content.decode()
    assert html.count("<tr data-unit=") == 3
    assert f"station={full.slug}" in re.search(r'id="export" href="([^"]+)"', html).group(1)
