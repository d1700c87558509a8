"""The live feeds in the OpenAPI document (a drf-spectacular post-processing hook).

OpenAPI 3.1 has no WebSocket object, so the document follows a convention, in three parts:

- each event's payload is a component schema (`Live…`, from the serializer its app declares as
  `live_events` on its AppConfig), and each route's messages are a `oneOf` of them told apart by
  `type` (`StationLiveEvent`, `DashboardLiveEvent`): a client's code generator gets one type per
  event, sharing `Unit` and `Alarm` with the REST answers;
- the top-level `x-websockets` maps each route of `config/routing.py` to its `parameters` (as an
  operation's), `authentication`, `closeCodes` and `messages` (the oneOf), for tools;
- the description gains a "Live events (WebSocket)" section that ReDoc renders on /api/v1/docs/
  with every event's schema, for people.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from django.apps import apps
from drf_spectacular.drainage import warn
from drf_spectacular.plumbing import ResolvedComponent, build_mocked_view
from drf_spectacular.settings import spectacular_settings
from drf_spectacular.utils import extend_schema
from rest_framework.serializers import Serializer

from config.routing import websocket_urlpatterns
from inspection.consumers import FORBIDDEN, NO_SUCH_STATION, NOT_AUTHENTICATED

SECTION_TITLE = "Live events (WebSocket)"


def station_events() -> dict[str, type[Serializer]]:
    """Every app's `live_events`: what `station_event_publish` sends to a station's group."""
    gathered: dict[str, type[Serializer]] = {}
    for app_config in apps.get_app_configs():
        gathered.update(getattr(app_config, "live_events", {}))
    return gathered


def dashboard_events() -> dict[str, type[Serializer]]:
    from inspection.events_schema import DASHBOARD_EVENTS

    return DASHBOARD_EVENTS


@dataclass(frozen=True)
class Feed:
    messages: str  # the component name of the route's messages (a oneOf)
    summary: str
    authentication: str
    close_codes: dict[int, str]
    events: Callable[[], dict[str, type[Serializer]]]
    parameters: dict[str, str]  # path parameter -> description


# By the route's name in config/routing.py.
FEEDS = {
    "station-events": Feed(
        messages="StationLiveEvent",
        summary="A station's live feed: its units arriving and decided, its alarms, its training",
        authentication=(
            "The line's computer: its device key in the handshake header `Authorization: Api-Key "
            "<key>` (a key sees only its own station). A browser page: the session cookie of a "
            "signed-in person holding `inspection.view_station`, from this site's own pages. A key "
            "in the header wins over a cookie."
        ),
        close_codes={
            NOT_AUTHENTICATED: "no credentials, or a wrong, revoked or expired key",
            FORBIDDEN: "the key belongs to another station, the person lacks the permission, or "
            "the page is another site's",
            NO_SUCH_STATION: "no such station (asked only once the client is authenticated)",
        },
        events=station_events,
        parameters={"slug": "the station's slug"},
    ),
    "dashboard-events": Feed(
        messages="DashboardLiveEvent",
        summary="The supervisors' dashboard: one notice per batch of any station's events",
        authentication=(
            "The session cookie of a signed-in person holding `inspection.view_dashboard`, from "
            "this site's own pages; device keys are refused."
        ),
        close_codes={
            NOT_AUTHENTICATED: "not signed in",
            FORBIDDEN: "without the permission, or from another site's page",
        },
        events=dashboard_events,
        parameters={},
    ),
}

INTRODUCTION = (
    "Connect a WebSocket to a route below and read JSON text frames; every frame is one event, an "
    "object whose `type` names it. Nothing is sent to the server. A refused handshake is "
    "accepted, then closed with a code saying why. Events are notifications sent after the "
    "database committed: after a reconnect, read what you missed from the REST API (a unit's "
    "`GET /api/v1/units/{id}/` is its record). The routes are also under `x-websockets` in this "
    "document, each event a `Live…` component schema."
)


def openapi_path(route: str) -> str:
    """`ws/stations/<slug:slug>/events/` -> `/ws/stations/{slug}/events/`."""
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def live_events_document(result: dict, generator, request, public) -> dict:
    """Add the WebSocket routes and their events to the generated document (see the module's
    docstring). Runs before drf-spectacular's enum hook, so the events' enums are named too."""
    routes = {pattern.name: str(pattern.pattern) for pattern in websocket_urlpatterns}
    for name in sorted(routes.keys() - FEEDS.keys()):
        warn(f"the WebSocket route {name!r} ({routes[name]}) is not documented in config.api_schema.FEEDS")
    view = build_mocked_view(
        method="GET", path="/ws/", extend_schema_decorator=extend_schema(), registry=generator.registry
    )
    sockets: dict[str, dict] = {}
    sections = [f"# {SECTION_TITLE}", INTRODUCTION]
    for name, feed in FEEDS.items():
        if name not in routes:
            warn(f"config.api_schema.FEEDS documents {name!r}, which config/routing.py does not route")
            continue
        path = openapi_path(routes[name])
        events = feed.events()
        refs = {}
        for event_type, serializer in events.items():
            refs[event_type] = view.schema.resolve_serializer(serializer, "response").ref["$ref"]
        messages = ResolvedComponent(name=feed.messages, type=ResolvedComponent.SCHEMA, object=feed.messages)
        messages.schema = {
            "description": f"What `{path}` sends: one of these, told apart by `type`.",
            "oneOf": [{"$ref": ref} for ref in refs.values()],
            "discriminator": {"propertyName": "type", "mapping": refs},
        }
        generator.registry.register_on_missing(messages)
        sockets[path] = {
            "summary": feed.summary,
            "parameters": [_path_parameter(key, about) for key, about in feed.parameters.items()],
            "authentication": feed.authentication,
            "closeCodes": {str(code): reason for code, reason in feed.close_codes.items()},
            "messages": {"$ref": f"#/components/schemas/{feed.messages}"},
        }
        sections.append(_section(path, feed, refs, events))
    # the registry now holds the events' schemas too: build the components again
    result["components"] = generator.registry.build(spectacular_settings.APPEND_COMPONENTS)
    result["x-websockets"] = sockets
    description = result["info"].get("description", "")
    result["info"]["description"] = "\n\n".join([description, *sections]).strip()
    return result


def _path_parameter(name: str, description: str) -> dict:
    schema = {"type": "string"}
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def _section(path: str, feed: Feed, refs: dict[str, str], events: dict[str, type[Serializer]]) -> str:
    lines = [f"## {path}", feed.summary + ".", "", f"**Authentication.** {feed.authentication}", ""]
    codes = "; ".join(f"`{code}` {why}" for code, why in feed.close_codes.items())
    lines.append(f"**Close codes.** {codes}.")
    for event_type, ref in refs.items():
        about = " ".join((events[event_type].__doc__ or "").split())
        lines += ["", f"### {event_type}", about, "", f'<SchemaDefinition schemaRef="{ref}" />']
    return "\n".join(lines)
