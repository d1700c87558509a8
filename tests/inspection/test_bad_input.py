"""Bad input on the line API: a clear 4xx naming the problem, and no row or file left behind."""

import io
import json
from pathlib import Path

import pytest
from PIL import Image, ImageFile
from rest_framework.test import APIClient

from inspection.models import Prediction, Unit
from inspection.services.stations import device_key_create
from tests.inspection.factories import jpeg_bytes, upload
from tests.openapi import openapi_document, response_schema, schema_errors

pytestmark = pytest.mark.django_db

UNITS = "/api/v1/units/"


def png_bytes(size=(64, 48), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, "PNG")
    return buffer.getvalue()


def nothing_stored(media_root: Path) -> bool:
    files = [path for path in media_root.rglob("*") if path.is_file()]
    return Unit.objects.count() == 0 and Prediction.objects.count() == 0 and files == []


@pytest.fixture
def line(make_station, device_client) -> APIClient:
    return device_client(make_station(level="full"))


BAD_UPLOADS = [
    ("not an image", lambda: upload(b"serial,verdict\nSN-1,pass\n", "unit.csv"), "not an image"),
    ("text under a .jpg name", lambda: upload(b"hello, I am not a JPEG", "unit.jpg"), "not an image"),
    ("truncated JPEG", lambda: upload(jpeg_bytes(1)[:4000], "unit.jpg"), "truncated"),
    ("empty file", lambda: upload(b"", "unit.jpg"), "empty"),
    ("GIF", lambda: upload(_gif(), "unit.gif"), "holds GIF data; accepted: JPEG, PNG, BMP, TIFF, WEBP"),
    # 20000 x 20000 black pixels compress to a few kB: refused from the header, never decoded
    ("decompression bomb", lambda: upload(png_bytes((20_000, 20_000), "1"), "bomb.png"), "pixels"),
]


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (8, 8)).save(buffer, "GIF")
    return buffer.getvalue()


@pytest.mark.parametrize("case, make_upload, message", BAD_UPLOADS, ids=[case[0] for case in BAD_UPLOADS])
def test_a_bad_image_is_refused_with_its_reason(line, media_root, case, make_upload, message):
    response = line.post(UNITS, {"image": make_upload(), "serial": "SN-1"}, format="multipart")
    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()["image"])
    assert nothing_stored(media_root)


def test_an_image_over_the_byte_limit_is_refused(line, media_root, settings):
    settings.LOUPE_MAX_IMAGE_BYTES = 1000
    response = line.post(UNITS, {"image": upload(jpeg_bytes()), "serial": "SN-1"}, format="multipart")
    assert response.status_code == 400
    assert "the limit is 1,000 bytes" in response.json()["image"][0]
    assert nothing_stored(media_root)


def test_an_image_over_the_pixel_limit_is_refused(line, media_root, settings):
    settings.LOUPE_MAX_IMAGE_PIXELS = 100 * 100
    response = line.post(UNITS, {"image": upload(jpeg_bytes()), "serial": "SN-1"}, format="multipart")
    assert response.status_code == 400
    assert "320x180" in response.json()["image"][0] and "limit is 10,000" in response.json()["image"][0]
    assert nothing_stored(media_root)


def test_a_frame_over_the_stations_camera_limit_is_refused_from_its_header(
    make_station, device_client, media_root
):
    # given a station whose camera sends 1280x720 frames
    station = make_station(level="full", max_image_pixels=1280 * 720)
    line = device_client(station)
    # a 1280x720 frame is accepted, a 1920x1080 one refused naming the limit
    frame = upload(jpeg_bytes(width=1280, height=720))
    assert line.post(UNITS, {"image": frame, "serial": "SN-1"}, format="multipart").status_code == 201
    frame = upload(jpeg_bytes(width=1920, height=1080))
    response = line.post(UNITS, {"image": frame, "serial": "SN-2"}, format="multipart")
    assert response.status_code == 400
    assert "1920x1080 = 2,073,600 pixels; the limit is 921,600" in response.json()["image"][0]
    assert Unit.objects.count() == 1


def _transparent_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (width, height), (0, 0, 0, 0)).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_issues_transparent_png_is_refused_undecoded(
    make_station, make_model_version, device_client, media_root, monkeypatch
):
    # given the 152 kB PNG of 6324x6324 RGBA pixels (40 MP, under LOUPE_MAX_IMAGE_PIXELS)
    data = _transparent_png(6324, 6324)
    assert len(data) < 200_000
    decoded = []
    load = ImageFile.ImageFile.load

    def recorded_load(image):
        decoded.append(image.size)
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recorded_load)
    # a station at the default camera limit refuses it from its header
    line = device_client(make_station(level="full"))
    response = line.post(UNITS, {"image": upload(data, "big.png"), "serial": "SN-1"}, format="multipart")
    assert response.status_code == 400
    assert "the limit is 16,000,000" in response.json()["image"][0]
    # a station allowed 40 MP frames refuses it by the decode budget: 160 MB decoded
    wide = make_station(slug="wide", champion=make_model_version(version=2), max_image_pixels=40_000_000)
    line = device_client(wide)
    response = line.post(UNITS, {"image": upload(data, "big.png"), "serial": "SN-1"}, format="multipart")
    assert response.status_code == 400
    message = response.json()["image"][0]
    assert "too large to decode safely" in message and "6324x6324 RGBA" in message
    assert "159,971,904 bytes; the limit is 67,108,864 bytes" in message
    assert decoded == [] and nothing_stored(media_root)


def test_a_jpeg_is_held_to_the_decode_budget_at_its_reduced_scale(line, media_root, settings):
    # a 1920x1080 JPEG decoded at full size takes 6.2 MB; the check decodes it at 1/8
    settings.LOUPE_MAX_DECODE_BYTES = 1920 * 1080 * 3 // 2
    frame = upload(jpeg_bytes(width=1920, height=1080))
    response = line.post(UNITS, {"image": frame, "serial": "SN-1"}, format="multipart")
    assert response.status_code == 201, response.content
    # a PNG of that size cannot be decoded smaller
    frame = upload(png_bytes((1920, 1080)), "unit.png")
    response = line.post(UNITS, {"image": frame, "serial": "SN-2"}, format="multipart")
    assert response.status_code == 400
    assert "1920x1080 RGB) would take 6,220,800 bytes" in response.json()["image"][0]


@pytest.mark.parametrize(
    "data, field, message",
    [
        ({"serial": "SN-1"}, "image", "No file was submitted"),
        ({"image": "not a file", "serial": "SN-1"}, "image", "not a file"),
        ({"with_image": True}, "serial", "required"),
        ({"with_image": True, "serial": "   "}, "serial", "blank"),
        ({"with_image": True, "serial": "x" * 201}, "serial", "200 characters"),
        ({"with_image": True, "serial": "S", "metadata": "{lot: 7"}, "metadata", "not valid JSON"),
        ({"with_image": True, "serial": "S", "metadata": "[1, 2]"}, "metadata", "must be a JSON object"),
        (
            {"with_image": True, "serial": "S", "captured_at": "yesterday"},
            "captured_at",
            "Datetime has wrong format",
        ),
    ],
)
def test_bad_fields_are_named(line, media_root, data, field, message):
    if data.pop("with_image", False):
        data["image"] = upload(jpeg_bytes())
    response = line.post(UNITS, data, format="multipart")
    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()[field])
    assert nothing_stored(media_root)


def test_a_json_body_is_refused(line, media_root):
    response = line.post(UNITS, {"serial": "SN-1"}, format="json")
    assert response.status_code == 415
    assert nothing_stored(media_root)


@pytest.mark.parametrize(
    "header, message",
    [
        ("Api-Key nothing", "malformed device key"),
        ("Api-Key abcdefgh.wrongsecretwrongsecretwrongsecret", "invalid device key"),
        ("Api-Key ", "empty device key"),
    ],
)
def test_a_wrong_key_is_401(make_station, media_root, header, message):
    make_station()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.post(UNITS, {"image": upload(jpeg_bytes()), "serial": "S"}, format="multipart")
    assert response.status_code == 401
    assert message in response.json()["detail"]
    assert nothing_stored(media_root)


def test_no_credentials_is_401(make_station, media_root):
    make_station()
    response = APIClient().post(UNITS, {"image": upload(jpeg_bytes()), "serial": "S"}, format="multipart")
    assert response.status_code == 401
    assert nothing_stored(media_root)


def test_a_revoked_key_is_locked_out(make_station, media_root):
    station = make_station()
    row, key = device_key_create(station=station, name="old line pc")
    row.revoked = True
    row.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    response = client.post(UNITS, {"image": upload(jpeg_bytes()), "serial": "S"}, format="multipart")
    assert response.status_code == 401
    assert "has been revoked" in response.json()["detail"]
    assert nothing_stored(media_root)


def test_a_failure_while_storing_leaves_no_file_and_no_row(line, media_root, monkeypatch):
    # given the database refuses the decision event (a failure half-way through the transaction)
    from inspection.models import DecisionEvent

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(DecisionEvent.objects, "create", broken)
    with pytest.raises(RuntimeError):
        line.post(UNITS, {"image": upload(jpeg_bytes()), "serial": "SN-1"}, format="multipart")
    assert nothing_stored(media_root)


def test_a_key_revoked_after_use_is_refused_at_once(make_station, media_root):
    # given a key the server has already verified (and remembers for a moment)
    station = make_station()
    row, key = device_key_create(station=station, name="line pc")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert (
        client.post(UNITS, {"image": upload(jpeg_bytes()), "serial": "S1"}, format="multipart").status_code
        == 201
    )
    # when a supervisor revokes it
    row.revoked = True
    row.save()
    # then the next post is refused
    response = client.post(UNITS, {"image": upload(jpeg_bytes()), "serial": "S2"}, format="multipart")
    assert response.status_code == 401 and "revoked" in response.json()["detail"]
    assert Unit.objects.count() == 1


METADATA_REFUSALS = [
    # the issue's probes: 100,000 levels deep, NaN, Infinity (HTML 500s before), and too large
    ("100,000 deep", "[" * 100_000 + "]" * 100_000, "the limit is 65,536 bytes"),
    ("33 deep", '{"a": ' * 33 + "1" + "}" * 33, "nested more than 32 levels deep"),
    ("NaN", '{"lot": NaN}', "holds NaN, which is not a JSON number"),
    ("Infinity", '{"lot": -Infinity}', "holds -Infinity"),
    ("1 MB", json.dumps({"notes": "x" * 1_000_000}), "metadata is 1,000,013 bytes; the limit is 65,536"),
]


@pytest.mark.parametrize(
    "case, metadata, message", METADATA_REFUSALS, ids=[case[0] for case in METADATA_REFUSALS]
)
def test_bad_metadata_is_a_json_400_naming_it(line, media_root, case, metadata, message):
    data = {"image": upload(jpeg_bytes(width=1280, height=720)), "serial": "SN-1", "metadata": metadata}
    response = line.post(UNITS, data, format="multipart")
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert message in " ".join(response.json()["metadata"])
    assert nothing_stored(media_root)


def test_metadata_at_the_depth_limit_with_brackets_in_strings_is_kept(line, media_root):
    metadata = '{"a": ' * 31 + '"[[[[{{{{ \\" [[["' + "}" * 31
    data = {"image": upload(jpeg_bytes()), "serial": "SN-1", "metadata": metadata}
    response = line.post(UNITS, data, format="multipart")
    assert response.status_code == 201, response.content
    assert Unit.objects.get().metadata == json.loads(metadata)


def test_form_fields_over_djangos_limit_are_a_json_413(line, media_root):
    # 5 MB of metadata passes DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB): Django refuses the form (an HTML
    # 400 before), the API answers JSON naming the limits
    data = {"image": upload(jpeg_bytes()), "serial": "SN-1", "metadata": json.dumps({"x": "x" * 5_000_000})}
    response = line.post(UNITS, data, format="multipart")
    assert response.status_code == 413 and response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == "fields_too_large" and body["limit"] == 2_621_440
    assert "metadata is at most 65,536 bytes" in body["detail"]
    assert nothing_stored(media_root)
    # and the answer is the one the OpenAPI document describes
    document = openapi_document()
    assert schema_errors(document, response_schema(document, UNITS, "post", "413"), body) == []


def test_a_decision_nested_too_deep_is_a_json_400(make_station, device_client):
    from tests.inspection.factories import person, posted_unit

    unit = posted_unit(device_client(make_station(level="assisted")))
    client = APIClient()
    client.force_authenticate(person())
    response = client.post(
        f"/api/v1/units/{unit['id']}/decision/",
        "[" * 100_000 + "]" * 100_000,
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "nested too deep" in response.json()["detail"]


def test_a_url_with_no_endpoint_under_api_is_a_json_404(line):
    response = line.get("/api/v1/no-such-thing/")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "no API endpoint at /api/v1/no-such-thing/"}


def test_a_server_error_under_api_is_json(line, monkeypatch):
    # given a fault no view expects (the database gone, say)
    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("inspection.api.unit_get", broken)
    line.raise_request_exception = False
    response = line.get("/api/v1/units/1/")
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "internal server error"}
