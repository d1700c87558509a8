"""The live feeds: `/ws/stations/<slug>/events/` (the line, with its device key, and signed-in pages)
and `/ws/dashboard/`. Who may subscribe and the close codes 4401/4403/4404: docs/operations.md."""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from rest_framework.exceptions import AuthenticationFailed, Throttled

from inspection.authentication import device_from_key, key_from_header
from inspection.events import SUPERVISION_GROUP, station_group
from inspection.models import Station
from inspection.throttling import client_address

NOT_AUTHENTICATED = 4401
FORBIDDEN = 4403
NO_SUCH_STATION = 4404
VIEW_PERMISSION = "inspection.view_station"
DASHBOARD_PERMISSION = "inspection.view_dashboard"


class _GroupConsumer(AsyncJsonWebsocketConsumer):
    """Checks the handshake, then joins one group and forwards what is sent to it."""

    group_name: str | None = None

    async def refusal(self) -> int | None:
        """The close code refusing this handshake, or None to let it subscribe."""
        raise NotImplementedError

    def group(self) -> str:
        raise NotImplementedError

    async def connect(self) -> None:
        refusal = await self.refusal()
        if refusal is not None:
            await self.accept()
            await self.close(code=refusal)
            return
        # Join before accepting: once the client sees the handshake succeed, no event is missed.
        self.group_name = self.group()
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group_name is not None:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)


class StationEventsConsumer(_GroupConsumer):
    async def refusal(self) -> int | None:
        return await _refusal(
            slug=self.scope["url_route"]["kwargs"]["slug"],
            authorization=_header(self.scope, b"authorization"),
            client=_client(self.scope),
            user=self.scope.get("user"),
            origin=_header(self.scope, b"origin"),
            host=_header(self.scope, b"host"),
        )

    def group(self) -> str:
        return station_group(self.scope["url_route"]["kwargs"]["slug"])

    async def station_event(self, message: dict) -> None:
        """A `station.event` from the group carries a batch of the station's events (the publisher
        sends them together); each goes to the client as is, as its own message, in order."""
        for event in message["events"]:
            await self.send_json(event)


class DashboardEventsConsumer(_GroupConsumer):
    async def refusal(self) -> int | None:
        return await _dashboard_refusal(
            user=self.scope.get("user"),
            origin=_header(self.scope, b"origin"),
            host=_header(self.scope, b"host"),
        )

    def group(self) -> str:
        return SUPERVISION_GROUP

    async def station_activity(self, message: dict) -> None:
        """A `station.activity` notice goes to the client as is."""
        await self.send_json(message)


def _signed_in(user) -> bool:
    return user is not None and user.is_authenticated and user.is_active


def _foreign_origin(origin: str | None, host: str | None) -> bool:
    """A cookie rides along with any page's WebSocket: only this site's own pages may use it."""
    return origin is not None and host is not None and urlsplit(origin).netloc != host


@database_sync_to_async
def _dashboard_refusal(*, user, origin: str | None, host: str | None) -> int | None:
    if not _signed_in(user):
        return NOT_AUTHENTICATED
    if _foreign_origin(origin, host):
        return FORBIDDEN
    return None if user.has_perm(DASHBOARD_PERMISSION) else FORBIDDEN


@database_sync_to_async
def _refusal(
    *,
    slug: str,
    authorization: str | None,
    user,
    client: str | None = None,
    origin: str | None = None,
    host: str | None = None,
) -> int | None:
    key = key_from_header(authorization) if authorization is not None else None
    if key is not None:
        try:
            device = device_from_key(key, client=client)
        except (AuthenticationFailed, Throttled):
            return NOT_AUTHENTICATED
        if not Station.objects.filter(slug=slug).exists():
            return NO_SUCH_STATION
        return None if device.station.slug == slug else FORBIDDEN
    if not _signed_in(user):
        return NOT_AUTHENTICATED
    if _foreign_origin(origin, host):
        return FORBIDDEN
    if not Station.objects.filter(slug=slug).exists():
        return NO_SUCH_STATION
    return None if user.has_perm(VIEW_PERMISSION) else FORBIDDEN


def _client(scope: dict) -> str:
    """The handshake's client address, read as `client_address` reads an HTTP request's."""
    meta = {"REMOTE_ADDR": (scope.get("client") or ("",))[0]}
    for header_name, value in scope.get("headers", []):
        meta["HTTP_" + header_name.decode("latin1").upper().replace("-", "_")] = value.decode("latin1")
    return client_address(meta)


def _header(scope: dict, name: bytes) -> str | None:
    for header_name, value in scope.get("headers", []):
        if header_name.lower() == name:
            return value.decode("latin1")
    return None
