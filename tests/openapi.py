"""Real answers and events checked against the OpenAPI document that /api/v1/schema/ serves.

OpenAPI 3.1's schemas are JSON Schema 2020-12, so `jsonschema` validates against them directly,
with the document as the resource every `$ref` points into. The check is strict where a client
would be hurt: every object's documented properties are all it may carry (a key the code returns
and the schema does not name fails), on top of the schema's own required keys and types.
"""

from __future__ import annotations

import copy

from django.test import Client
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

DOCUMENT_URI = "urn:loupe:openapi"


def openapi_document(client: Client | None = None) -> dict:
    response = (client or Client()).get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200, response.content
    return response.json()


def closed(schema):
    """`schema` with every object that lists its properties closed to any other."""
    if isinstance(schema, list):
        return [closed(each) for each in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: closed(value) for key, value in schema.items()}
    if "properties" in result and "additionalProperties" not in result:
        result["additionalProperties"] = False
    return result


def component_ref(name: str) -> dict:
    return {"$ref": f"{DOCUMENT_URI}#/components/schemas/{name}"}


def schema_errors(document: dict, schema: dict, instance) -> list[str]:
    """Every way `instance` breaks `schema` (a piece of `document`; its `$ref`s point into
    `document`, or at it through `component_ref`), each as "path: message"."""
    strict = closed(copy.deepcopy(document))
    registry = Registry().with_resource(DOCUMENT_URI, DRAFT202012.create_resource(strict))
    validator = Draft202012Validator(_pointing_into_document(closed(schema)), registry=registry)
    return [
        f"{'/'.join(str(step) for step in error.absolute_path) or '(top)'}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


def response_schema(document: dict, path: str, method: str = "get", status: str = "200") -> dict:
    operation = document["paths"][path][method]
    return operation["responses"][status]["content"]["application/json"]["schema"]


def _pointing_into_document(schema):
    """Local `#/...` references of a piece taken out of the document point back into it."""
    if isinstance(schema, list):
        return [_pointing_into_document(each) for each in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: _pointing_into_document(value) for key, value in schema.items()}
    if isinstance(result.get("$ref"), str) and result["$ref"].startswith("#/"):
        result["$ref"] = DOCUMENT_URI + result["$ref"]
    return result
