"""Frames as a line camera sends them, through the HTTP API at full automation.

Regions land on the defect in original pixels at every size (640x360 to 12 MP), in every accepted
format and bit depth and with EXIF orientation; images are accepted by content whatever their
name; frames the model cannot judge go to a person, and a run of them raises a camera fault.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from inspection.enums import AutomationLevel
from inspection.models import DecisionEvent, Prediction, Station, Unit
from inspection.supervision.models import Alarm, AlarmKind
from models_registry.ml.frames import frame_decode
from models_registry.ml.serving.bundle import read_config
from tests.inspection.camera import encoded, exif_rotated_jpeg, stain_unit
from tests.inspection.factories import upload
from workers.tasks import camera_fault_check_task

pytestmark = pytest.mark.django_db

UNITS = "/api/v1/units/"


@pytest.fixture
def line(make_station, make_model_version, stain_bundle, device_client):
    champion = make_model_version("stain", 1, threshold=0.0, bundle=stain_bundle)
    return device_client(make_station(level=AutomationLevel.FULL, champion=champion))


def post(client, data: bytes, name: str = "unit.jpg", serial: str = "SN-1") -> dict:
    response = client.post(UNITS, {"image": upload(data, name), "serial": serial}, format="multipart")
    assert response.status_code == 201, response.content
    return response.json()


def best_iou(regions: list[dict], box: tuple[float, float, float, float]) -> float:
    x, y, w, h = box
    best = 0.0
    for region in regions:
        ix = max(0.0, min(region["x"] + region["width"], x + w) - max(region["x"], x))
        iy = max(0.0, min(region["y"] + region["height"], y + h) - max(region["y"], y))
        inter = ix * iy
        best = max(best, inter / (region["width"] * region["height"] + w * h - inter))
    return best


FRAMES = {
    "640x360 JPEG": (640, 360, "JPEG"),
    "1280x720 JPEG": (1280, 720, "JPEG"),
    "1920x1080 JPEG": (1920, 1080, "JPEG"),
    "12 MP JPEG (4608x2592)": (4608, 2592, "JPEG"),
    "1920x1080 PNG": (1920, 1080, "PNG"),
    "1920x1080 TIFF": (1920, 1080, "TIFF"),
    "1920x1080 WebP": (1920, 1080, "WEBP"),
}
OPTIONS = {"JPEG": {"quality": 92}, "TIFF": {"compression": "tiff_lzw"}, "WEBP": {"quality": 95}, "PNG": {}}


@pytest.mark.parametrize("frame_name", FRAMES)
def test_the_region_is_on_the_defect_in_original_pixels(line, media_root, frame_name):
    # given a unit with a known stain, as a frame of the camera's size and format
    width, height, fmt = FRAMES[frame_name]
    unit = stain_unit(1001)
    data = encoded(unit.frame(width, height), fmt, **OPTIONS[fmt])
    # when the line posts it
    body = post(line, data, name=f"unit.{fmt.lower()}")
    # then the model's region covers the stain where it is in the frame's own pixels
    assert body["width"] == width and body["height"] == height
    assert body["decision"] == "fail"
    assert best_iou(body["regions"], unit.box(width, height)) >= 0.5, (
        body["regions"],
        unit.box(width, height),
    )
    stored = Unit.objects.get(pk=body["id"])
    assert (stored.image_width, stored.image_height, stored.image_format) == (width, height, fmt)
    assert Prediction.objects.get(unit=stored).regions == body["regions"]


def test_the_same_unit_larger_gets_its_regions_larger(line, media_root, stain_bundle):
    # the bug this guards against gave a 640x360 unit and the same unit at 1280x720 the same boxes
    unit = stain_unit(1002)
    small = post(line, encoded(unit.frame(640, 360), "JPEG", quality=92), serial="small")
    large = post(line, encoded(unit.frame(1280, 720), "JPEG", quality=92), serial="large")
    (a,), (b,) = small["regions"][:1], large["regions"][:1]
    # Both frames reach the model as the same content (within 3 grey levels); its box edges are
    # as fine as one content pixel, which is this many pixels of the 1280x720 frame.
    scale_x, scale_y = read_config(stain_bundle).geometry.content_scale(1280, 720)
    model_pixel = {"x": 1 / scale_x, "width": 1 / scale_x, "y": 1 / scale_y, "height": 1 / scale_y}
    for key in ("x", "y", "width", "height"):
        assert b[key] == pytest.approx(2 * a[key], rel=0.05, abs=model_pixel[key]), (a, b)


def test_an_exif_rotated_jpeg_is_judged_upright(line, media_root):
    unit = stain_unit(1001)  # the unit of the sizes above: only the orientation differs
    body = post(line, exif_rotated_jpeg(unit.frame(1920, 1080)))
    assert (body["width"], body["height"]) == (1920, 1080)
    assert best_iou(body["regions"], unit.box(1920, 1080)) >= 0.5
    # the page gets the upright picture too (a rendition: browsers differ on EXIF), as the model saw it
    image = line.get(body["image_url"])
    assert image["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(b"".join(image.streaming_content))) as shown:
        assert shown.size == (1920, 1080)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_grey_is_judged_as_its_8_bit_picture(line, media_root, fmt):
    # given a defective unit in 8-bit grey and the very same picture in 16 bits a sample
    grey = np.asarray(stain_unit(1004).frame(1920, 1080).convert("L"))
    eight = post(line, encoded(Image.fromarray(grey), fmt), name=f"eight.{fmt.lower()}", serial="8")
    sixteen_image = Image.fromarray(grey.astype(np.uint16) * 257)
    sixteen = post(line, encoded(sixteen_image, fmt), name=f"sixteen.{fmt.lower()}", serial="16")
    # then the model sees the same picture in both (not a white frame it would pass)
    assert sixteen["score"] == pytest.approx(eight["score"], abs=1e-6)
    assert sixteen["decision"] == eight["decision"]
    assert sixteen["regions"] == eight["regions"]
    # and the page shows the person that picture, as 8-bit PNG
    image = line.get(sixteen["image_url"])
    with Image.open(io.BytesIO(b"".join(image.streaming_content))) as shown:
        np.testing.assert_array_equal(np.asarray(shown.convert("L")), grey)


def test_a_png_named_jpg_is_accepted_by_its_content(line, media_root):
    body = post(line, encoded(stain_unit(1005).frame(1280, 720), "PNG"), name="IMG_0042.jpg")
    unit = Unit.objects.get(pk=body["id"])
    assert unit.image_format == "PNG" and unit.image.name.endswith(".png")
    assert unit.source_filename == "IMG_0042.jpg"
    assert (media_root / unit.image.name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _uniform(value: int) -> Image.Image:
    return Image.new("RGB", (1920, 1080), (value, value, value))


DEAD_FRAMES = {
    "a 1x1 PNG": (lambda: encoded(Image.new("RGB", (1, 1), (90, 90, 90)), "PNG"), "frame too small"),
    "all black": (lambda: encoded(_uniform(0), "JPEG"), "uniform frame"),
    "all white": (lambda: encoded(_uniform(255), "JPEG"), "uniform frame"),
    "all grey": (lambda: encoded(_uniform(128), "PNG"), "uniform frame"),
    "grey with sensor noise": (
        lambda: encoded(
            Image.fromarray(
                np.random.default_rng(0).normal(128, 1.0, (1080, 1920, 3)).clip(0, 255).astype(np.uint8)
            ),
            "JPEG",
        ),
        "uniform frame",
    ),
    "badly overexposed": (
        lambda: encoded(Image.fromarray(255 - np.asarray(stain_unit(7).frame(1920, 1080)) // 8), "JPEG"),
        "overexposed",
    ),
}


@pytest.mark.parametrize("case", DEAD_FRAMES)
def test_a_frame_the_model_cannot_judge_goes_to_a_person_with_the_reason(line, media_root, case):
    # given a station at full automation, where the model decides every unit it can judge
    make, reason = DEAD_FRAMES[case]
    # when a dead camera's frame arrives
    body = post(line, make())
    # then it is stored and waits for a person, with the reason named; the model never decides it
    assert body["status"] == "pending" and body["decision"] is None
    assert body["queue_reason"] == "frame_check"
    assert body["frame_check"].startswith(f"frame check: {reason}")
    unit = Unit.objects.get(pk=body["id"])
    assert not Prediction.objects.filter(unit=unit).exists()
    assert not DecisionEvent.objects.filter(unit=unit).exists()
    assert unit.routing["frame_check"]["message"] == body["frame_check"]


def test_a_run_of_dead_frames_raises_a_camera_fault_that_steps_the_level_down(line, media_root, settings):
    settings.LOUPE_CAMERA_FAULT_RUN = 5
    station = Station.objects.get()
    # a good unit, then four dead frames: not yet a run
    post(line, encoded(stain_unit(1006).frame(1280, 720), "JPEG"), serial="good")
    for index in range(4):
        post(line, encoded(_uniform(0), "JPEG"), serial=f"dark-{index}")
    assert camera_fault_check_task(station.pk) == []
    # the fifth dead frame in a row makes it one
    post(line, encoded(_uniform(255), "JPEG"), serial="dark-4")
    (alarm_id,) = camera_fault_check_task(station.pk)
    alarm = Alarm.objects.get(pk=alarm_id)
    assert alarm.kind == AlarmKind.CAMERA
    assert alarm.summary == "camera or lighting fault: the last 5 frames failed the frame check (5 uniform)"
    station.refresh_from_db()
    assert station.automation_level == AutomationLevel.PARTIAL
    change = station.changes.get(field="automation_level")
    assert change.alarm == alarm and f"alarm {alarm.pk} (camera or lighting fault" in change.note
    # more dead frames count on the same alarm
    post(line, encoded(_uniform(0), "JPEG"), serial="dark-5")
    assert camera_fault_check_task(station.pk) == []
    alarm.refresh_from_db()
    assert alarm.times_seen == 2


def test_the_page_gets_the_posted_file_when_the_browser_shows_it_as_decoded(line, media_root):
    data = encoded(stain_unit(1007).frame(1280, 720), "JPEG", quality=90)
    body = post(line, data)
    image = line.get(body["image_url"])
    assert image["Content-Type"] == "image/jpeg"
    assert b"".join(image.streaming_content) == data


def test_a_tiff_is_shown_to_the_page_as_the_model_decoded_it(line, media_root):
    picture = stain_unit(1008).frame(1920, 1080)
    data = encoded(picture, "TIFF", compression="tiff_lzw")
    body = post(line, data, name="unit.tif")
    image = line.get(body["image_url"])
    assert image["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(b"".join(image.streaming_content))) as shown:
        np.testing.assert_array_equal(np.asarray(shown.convert("RGB")), frame_decode(data).pixels)
    again = line.get(body["image_url"])  # made once, kept
    assert b"".join(again.streaming_content) == b"".join(line.get(body["image_url"]).streaming_content)
