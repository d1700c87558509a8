"""What the line hears when Loupe cannot store a unit: a JSON 503 with Retry-After, nothing kept,
and the same request taken once the cause is gone (bench/faults.py drills the same on the whole
topology)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from django.db import OperationalError

from inspection.models import Unit
from tests.inspection.factories import jpeg_bytes, upload

UNITS = "/api/v1/units/"
pytestmark = pytest.mark.django_db


@pytest.fixture
def small_media_disk(media_root: Path):
    """The media folder on a 4 MiB filesystem of its own (tmpfs; needs root, as CI has)."""
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(media_root)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem for the media folder: {mounted.stderr.strip()}")
    try:
        yield media_root
    finally:
        subprocess.run(["umount", "--lazy", str(media_root)], check=False)


def _fill(folder: Path, *, leave: int) -> Path:
    ballast = folder / "ballast"
    free = shutil.disk_usage(folder).free
    ballast.write_bytes(b"\0" * max(0, free - leave))
    return ballast


def test_a_full_media_disk_is_a_503_keeping_nothing_and_the_retry_is_stored(
    make_station, device_client, small_media_disk
):
    line = device_client(make_station(level="full"))
    frame = jpeg_bytes(3, width=1920, height=1080)
    ballast = _fill(small_media_disk, leave=len(frame) // 2)

    def post():
        return line.post(
            UNITS,
            {"image": upload(frame), "serial": "SN-FULL"},
            format="multipart",
            HTTP_IDEMPOTENCY_KEY="SN-FULL",
        )

    refused = post()
    assert refused.status_code == 503, refused.content
    assert refused.json() == {
        "detail": "the media disk is full: the unit was not stored",
        "code": "storage_full",
    }
    assert int(refused["Retry-After"]) > 0
    assert Unit.objects.count() == 0
    assert [path.name for path in small_media_disk.rglob("*") if path.is_file()] == ["ballast"]

    ballast.unlink()
    stored = post()
    assert stored.status_code == 201, stored.content
    unit = Unit.objects.get()
    assert hashlib.sha256(Path(unit.image.path).read_bytes()).hexdigest() == hashlib.sha256(frame).hexdigest()


def test_a_database_outage_is_a_json_503_the_line_may_retry(
    make_station, device_client, media_root, monkeypatch
):
    line = device_client(make_station(level="full"))

    def database_gone(**kwargs):
        raise OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")

    monkeypatch.setattr("inspection.api.unit_submit", database_gone)
    response = line.post(
        UNITS, {"image": upload(jpeg_bytes(1, width=1280, height=720)), "serial": "SN-DB"}, format="multipart"
    )
    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"
    assert int(response["Retry-After"]) > 0
