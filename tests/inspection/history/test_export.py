"""The CSV export of the units page's search: its rows, what it hides, and that it streams."""

from __future__ import annotations

import csv
import io

import pytest
from django.http import StreamingHttpResponse

from inspection.enums import AutomationLevel
from inspection.history.export import COLUMNS
from inspection.models import Unit
from inspection.services.decisions import decision_record
from tests.inspection.factories import person, posted_unit, signed_in

pytestmark = pytest.mark.django_db


def exported(client, query: str = "") -> list[dict]:
    response = client.get(f"/units/export.csv{query}")
    assert response.status_code == 200, response.content
    assert isinstance(response, StreamingHttpResponse) and response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"].startswith('attachment; filename="loupe-units-')
    text = b"".join(response.streaming_content).decode()
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames) == COLUMNS
    return list(reader)


def test_the_export_has_a_row_per_matching_unit_with_its_decision(make_station, device_client, media_root):
    full = make_station(slug="full", level=AutomationLevel.FULL)
    shadow = make_station(slug="shadow", level=AutomationLevel.SHADOW, champion=full.champion)
    decided = posted_unit(device_client(full), "=HYPERLINK(1)", seed=1)
    blind = posted_unit(device_client(shadow), "SH-1", seed=2)
    judged = posted_unit(device_client(shadow), "SH-2", seed=3)
    inspector = person()
    decision_record(unit=Unit.objects.get(pk=judged["id"]), user=inspector, verdict="pass")
    client = signed_in(person("sam", role="supervisor"))

    rows = {row["unit_id"]: row for row in exported(client)}
    assert set(rows) == {str(decided["id"]), str(blind["id"]), str(judged["id"])}
    model_row = rows[str(decided["id"])]
    assert model_row["serial"] == "'=HYPERLINK(1)"  # not a formula to a spreadsheet
    assert (model_row["station"], model_row["status"], model_row["verdict"]) == (
        "full",
        "decided",
        decided["decision"],
    )
    assert (model_row["decided_by"], model_row["reason"], model_row["person"]) == ("model", "automatic", "")
    assert model_row["model_version"] == "tiny:1" and float(model_row["score"]) == pytest.approx(
        decided["score"], abs=1e-6
    )
    assert (model_row["width"], model_row["height"]) == ("320", "180")
    # a blind unit still waiting shows no score; once judged, it does
    assert rows[str(blind["id"])]["score"] == "" and rows[str(blind["id"])]["status"] == "pending"
    person_row = rows[str(judged["id"])]
    assert (person_row["decided_by"], person_row["person"], person_row["reason"]) == (
        "human",
        "ines",
        "human",
    )
    assert person_row["score"] != ""
    # the filters of the page apply
    assert [row["unit_id"] for row in exported(client, "?station=shadow&verdict=pending")] == [
        str(blind["id"])
    ]


def test_the_export_refuses_a_bad_filter_in_json_and_is_for_supervisors(make_station, media_root):
    client = signed_in(person("sam", role="supervisor"))
    response = client.get("/units/export.csv?verdict=maybe")
    assert response.status_code == 400
    assert response.json()["errors"]["verdict"][0].startswith("Select a valid choice")
    assert signed_in(person()).get("/units/export.csv").status_code == 403
