"""Wrong device keys are counted per client: past the limit the client gets a JSON 429 with
Retry-After, even with a right key it has not used yet; a line already verified keeps working."""

from __future__ import annotations

import logging

import pytest
from rest_framework.test import APIClient

from inspection.services.stations import device_key_create
from tests.inspection.factories import jpeg_bytes, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def limits(settings):
    settings.LOUPE_DEVICE_KEY_FAILURES = 3
    settings.LOUPE_FAILURE_WINDOW_SECONDS = 600


def post(key: str, address: str = "10.0.1.5"):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client.post(
        "/api/v1/units/",
        {"image": upload(jpeg_bytes()), "serial": "S1"},
        format="multipart",
        REMOTE_ADDR=address,
    )


def test_too_many_wrong_keys_get_a_json_429_with_retry_after(limits, make_station, media_root, caplog):
    _, key = device_key_create(station=make_station(), name="line pc")
    prefix = key.partition(".")[0]
    with caplog.at_level(logging.WARNING, logger="loupe.security"):
        assert post("nope.nope").status_code == 401
        assert post(f"{prefix}.wrong-secret").status_code == 401
        assert post("malformed").status_code == 401
        refused = post(key)

    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/json"
    assert "too many failed device keys" in refused.json()["detail"]
    assert 0 < int(refused["Retry-After"]) <= 1200
    assert sum("device key failed" in line for line in caplog.messages) == 3
    assert any("device key refused" in line and "10.0.1.5" in line for line in caplog.messages)
    # another client with the same key is not held back by this one's failures
    assert post(key, address="10.0.1.6").status_code == 201


def test_behind_a_proxy_the_client_is_read_from_the_configured_header(
    limits, settings, make_station, media_root
):
    settings.LOUPE_CLIENT_IP_HEADER = "HTTP_X_REAL_IP"
    _, key = device_key_create(station=make_station(), name="line pc")

    def through_proxy(key: str, client: str):
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        return api.post(
            "/api/v1/units/",
            {"image": upload(jpeg_bytes()), "serial": "S2"},
            format="multipart",
            REMOTE_ADDR="127.0.0.1",
            HTTP_X_REAL_IP=client,
        )

    for _ in range(3):
        assert through_proxy("bad.key", "192.0.2.1").status_code == 401
    assert through_proxy(key, "192.0.2.1").status_code == 429
    assert through_proxy(key, "192.0.2.2").status_code == 201


@pytest.mark.django_db(transaction=True)
def test_the_websocket_handshake_counts_wrong_keys_too(limits, settings, make_station, channel_layer):
    from tests.inspection.test_realtime import close_code, events_path, key_headers

    settings.LOUPE_CLIENT_IP_HEADER = "HTTP_X_REAL_IP"
    station = make_station(champion=None, level="human")
    _, key = device_key_create(station=station, name="line pc")
    through_proxy = [(b"x-real-ip", b"192.0.2.9")]

    for _ in range(3):
        assert close_code(events_path(station.slug), key_headers("bad.key") + through_proxy) == 4401
    # the right key from that client is refused while the window is full
    assert close_code(events_path(station.slug), key_headers(key) + through_proxy) == 4401


def test_with_redis_unreachable_the_line_still_posts_and_a_wrong_key_is_still_401(
    limits, make_station, media_root, settings
):
    # the cache pointing at a port where no Redis answers, as during a Redis restart
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2},
        }
    }
    _, key = device_key_create(station=make_station(), name="line pc")
    assert post("nope.nope").status_code == 401
    response = post(key, address="10.0.1.9")
    assert response.status_code == 201, response.content
