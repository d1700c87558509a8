"""The OpenAPI document as a whole: drf-spectacular generates it without a warning or an error,
and it validates against the OpenAPI 3.1 specification's own schema; every WebSocket route and
every event type the code publishes is in it (config/api_schema.py)."""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from drf_spectacular.management.commands.spectacular import SchemaGenerationError

from config import api_schema
from config.api_schema import openapi_path
from config.routing import websocket_urlpatterns
from inspection.consumers import StationEventsConsumer
from tests.openapi import openapi_document

REPOSITORY = Path(__file__).resolve().parents[2]


def test_the_schema_generates_without_warnings_and_validates(tmp_path, capsys):
    written = tmp_path / "openapi.json"

    # --fail-on-warn raises on any warning or error the generator reports
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", str(written)
    )

    document = json.loads(written.read_text())
    assert document["openapi"] == "3.1.0"
    assert "/api/v1/dashboard/" in document["paths"]
    assert "Warning" not in capsys.readouterr().err


# -- the live events ------------------------------------------------------------------------------

PACKAGES = ("models_registry", "inspection", "labeling", "workers", "config")
# The Channels layer's envelope of a station's events (`inspection.events`), unwrapped by
# `StationEventsConsumer.station_event`: never sent to a client as it is.
CHANNEL_ENVELOPE = "station.event"
STATION_FEED, DASHBOARD_FEED = "/ws/stations/{slug}/events/", "/ws/dashboard/"


def published_event_types() -> dict[str, str]:
    """Every event type the code can publish, read from the source: the `"type"` of each dict
    built in a module that calls `station_event_publish` (and in `inspection/events.py`, which
    builds the dashboard's notice), resolved to its string, with where it is built. A type passed
    in as a function's argument is followed to that function's callers in the module."""
    found: dict[str, str] = {}
    for path in sorted(p for package in PACKAGES for p in (REPOSITORY / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        module_name = ".".join(path.relative_to(REPOSITORY).with_suffix("").parts)
        if module_name != "inspection.events" and not _calls(tree, "station_event_publish"):
            continue
        module = importlib.import_module(module_name)
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Dict):
                continue
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "type":
                    for event_type in _strings(value, module, tree, parents):
                        found.setdefault(event_type, f"{path.relative_to(REPOSITORY)}:{node.lineno}")
    return found


def _calls(tree: ast.AST, name: str) -> bool:
    return any(
        isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == name
        for node in ast.walk(tree)
    )


def _enclosing_function(node: ast.AST, parents: dict) -> ast.FunctionDef | None:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return node
    return None


def _strings(value: ast.expr, module, tree: ast.AST, parents: dict) -> set[str]:
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return {value.value}
    function = _enclosing_function(value, parents)
    arguments = [a.arg for a in (*function.args.args, *function.args.kwonlyargs)] if function else []
    if isinstance(value, ast.Name) and value.id in arguments:
        position, found = arguments.index(value.id), set()
        callers = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == function.name
        ]
        assert callers, f"{module.__name__}.{function.name}: no caller tells the event type {value.id}"
        for call in callers:
            given = {keyword.arg: keyword.value for keyword in call.keywords}
            argument = call.args[position] if position < len(call.args) else given[value.id]
            found |= _strings(argument, module, tree, parents)
        return found
    try:  # a module-level constant, or an attribute of one
        resolved = eval(compile(ast.Expression(value), module.__name__, "eval"), vars(module))  # noqa: S307
    except NameError:
        resolved = None
    assert isinstance(resolved, str), (
        f"{module.__name__}, line {value.lineno}: cannot tell the event type {ast.unparse(value)!r} "
        "from the source; build events with a constant type"
    )
    return {resolved}


def documented_event_types(document: dict, route: str) -> set[str]:
    messages = document["x-websockets"][route]["messages"]["$ref"].rsplit("/", 1)[1]
    return set(document["components"]["schemas"][messages]["discriminator"]["mapping"])


@pytest.mark.django_db
def test_every_event_the_code_publishes_is_documented(client):
    document = openapi_document(client)
    published = published_event_types()
    assert CHANNEL_ENVELOPE in published and hasattr(StationEventsConsumer, "station_event")
    del published[CHANNEL_ENVELOPE]

    documented = documented_event_types(document, STATION_FEED) | documented_event_types(
        document, DASHBOARD_FEED
    )

    undocumented = {kind: where for kind, where in published.items() if kind not in documented}
    assert undocumented == {}, "give these events a schema in their app's live_events (AppConfig)"
    assert documented - set(published) == set(), "documented events that nothing publishes"
    # the list is read from the code, not copied: these are its publishers today
    assert {"unit.received", "alarm.raised", "station.changed", "training.progress"} <= set(published)


@pytest.mark.django_db
def test_every_websocket_route_is_documented_with_its_events(client):
    document = openapi_document(client)
    routed = {openapi_path(str(pattern.pattern)) for pattern in websocket_urlpatterns}

    assert set(document["x-websockets"]) == routed == {STATION_FEED, DASHBOARD_FEED}
    station = document["x-websockets"][STATION_FEED]
    assert [parameter["name"] for parameter in station["parameters"]] == ["slug"]
    assert set(station["closeCodes"]) == {"4401", "4403", "4404"}
    assert "Authorization: Api-Key" in station["authentication"]
    assert documented_event_types(document, DASHBOARD_FEED) == {"station.activity"}
    # each event has its own schema, its type a constant, shown in the reference's own section
    schemas = document["components"]["schemas"]
    mapping = schemas["StationLiveEvent"]["discriminator"]["mapping"]
    description = document["info"]["description"]
    for event_type, ref in mapping.items():
        name = ref.rsplit("/", 1)[1]
        assert schemas[name]["properties"]["type"] == {"type": "string", "const": event_type}
        assert f"### {event_type}" in description and f'<SchemaDefinition schemaRef="{ref}" />' in description


def test_a_websocket_route_without_documentation_fails_the_generation(monkeypatch, tmp_path):
    monkeypatch.delitem(api_schema.FEEDS, "dashboard-events")

    with pytest.raises(SchemaGenerationError):
        call_command("spectacular", "--fail-on-warn", "--file", str(tmp_path / "openapi.yaml"))
