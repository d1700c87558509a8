"""The OpenAPI document as a whole: drf-spectacular generates it without a warning or an error,
and it validates against the OpenAPI 3.1 specification's own schema."""

from __future__ import annotations

import json

from django.core.management import call_command


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
