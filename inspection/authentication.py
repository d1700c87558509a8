"""Device keys: how a production line authenticates (`Authorization: Api-Key <key>`).

A key authenticates a `StationDevice`, never a Django user: it cannot log in to a page, and it
sees only its own station. A wrong key and a revoked key get distinct 401 messages.

A verified key is remembered by the process for `CACHE_SECONDS`, with its station: the lookup
(three joined tables, about 1 ms of database round trip here, 4 ms of a 26 ms request in all) is
then paid once per key every few seconds, not on every unit. Saving a key or a station in this
process forgets the cache at once; another process (a second web server) sees a revocation or a
settings change within `CACHE_SECONDS`.

Wrong keys are counted per client (`inspection.throttling`): past the limit, the client's
requests with a key it has not proven get 429 with `Retry-After`, without a lookup.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from inspection.models import DeviceKey, Station, StationSettings
from inspection.throttling import client_address, device_key_counter, failure_record, refusal_seconds

logger = logging.getLogger("loupe.security")

KEYWORD = "Api-Key"


@dataclass(frozen=True)
class StationDevice:
    """The principal behind a device key: `request.user` on line API requests."""

    station: Station
    key: DeviceKey
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    is_anonymous: bool = False

    def has_perm(self, permission: str, obj: object = None) -> bool:
        return False

    def __str__(self) -> str:
        return f"device key {self.key.prefix} of station {self.station.slug}"


CACHE_SECONDS = 2.0
_verified: dict[str, tuple[float, StationDevice]] = {}
_verified_lock = threading.Lock()


def device_cache_clear(**kwargs) -> None:
    with _verified_lock:
        _verified.clear()


def device_from_key(key: str, *, client: str | None = None) -> StationDevice:
    """The station device a key belongs to; `AuthenticationFailed` naming why not, or
    `Throttled` while `client` (an address) has sent too many wrong keys."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    now = time.monotonic()
    with _verified_lock:
        cached = _verified.get(digest)
    if cached is not None and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    counters = [device_key_counter(client)] if client is not None else []
    wait = refusal_seconds(counters)
    if wait is not None:
        logger.warning("device key refused: too many failures from client %s; retry in %d s", client, wait)
        raise exceptions.Throttled(
            wait=wait, detail=f"too many failed device keys from this client: try again in {wait} s"
        )
    try:
        device = _device_lookup(key)
    except exceptions.AuthenticationFailed as failure:
        failure_record(counters)
        if client is not None:
            logger.warning("device key failed (%s) from client %s", failure.detail, client)
        raise
    with _verified_lock:
        if len(_verified) > 10_000:
            _verified.clear()
        _verified[digest] = (now, device)
    return device


def _device_lookup(key: str) -> StationDevice:
    prefix, _, secret = key.partition(".")
    if not prefix or not secret:
        raise exceptions.AuthenticationFailed("malformed device key: expected PREFIX.SECRET")
    # The station's settings rows come in the same query (labeling's random share is read on
    # every unit the model decides).
    rows = [f"station__{kind._meta.model_name}" for kind in StationSettings.kinds()]
    found = (
        DeviceKey.objects.select_related("station__champion", "station__challenger", *rows)
        .defer("station__champion__metrics", "station__challenger__metrics")
        .filter(prefix=prefix)
        .first()
    )
    if found is None or not found.is_valid(key):
        raise exceptions.AuthenticationFailed("invalid device key")
    if found.revoked:
        raise exceptions.AuthenticationFailed(f"device key {found.prefix} has been revoked")
    if found.expiry_date is not None and found.expiry_date < timezone.now():
        raise exceptions.AuthenticationFailed(f"device key {found.prefix} has expired")
    return StationDevice(station=found.station, key=found)


def key_from_header(value: str) -> str | None:
    keyword, _, key = value.strip().partition(" ")
    if keyword != KEYWORD:
        return None
    return key.strip()


class DeviceKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request) -> tuple[StationDevice, DeviceKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        key = key_from_header(header)
        if key is None:
            return None  # not ours: other authentication classes may apply
        if not key:
            raise exceptions.AuthenticationFailed("empty device key after 'Api-Key'")
        device = device_from_key(key, client=client_address(request.META))
        return device, device.key

    def authenticate_header(self, request) -> str:
        return KEYWORD


class DeviceKeyScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes device keys."""

    target_class = "inspection.authentication.DeviceKeyAuthentication"
    name = "deviceKey"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": f"A station's device key: `{KEYWORD} <key>` (manage.py create_device_key)",
        }
