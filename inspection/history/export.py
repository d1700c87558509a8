"""The units page's CSV export: one row per unit and its current decision, streamed.

Rows come from a server-side cursor in chunks (`QuerySet.iterator`) and leave as CSV lines as
they are made, so the export's memory does not grow with its size. A cell a spreadsheet would
run as a formula (a serial starting with "=", "+", "-" or "@") is written with a leading
apostrophe.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.db.models import F, OuterRef, QuerySet, Subquery

from inspection.enums import UnitStatus
from inspection.models import DecisionEvent, Prediction, Unit

CHUNK = 2000
COLUMNS = (
    "unit_id",
    "station",
    "serial",
    "received_at",
    "captured_at",
    "status",
    "verdict",
    "decided_by",
    "person",
    "reason",
    "decided_at",
    "automation_level",
    "queue_reason",
    "model_version",
    "score",
    "disagreement",
    "width",
    "height",
    "image_sha256",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Line:
    """A file-like that hands back what csv.writer writes, so each row is yielded at once."""

    def write(self, value: str) -> str:
        return value


def units_csv_rows(units: QuerySet[Unit]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(COLUMNS)
    latest = DecisionEvent.objects.filter(unit=OuterRef("pk")).order_by("-created_at", "-id")
    deciding = Prediction.objects.filter(unit=OuterRef("pk"), model_version=OuterRef("deciding_model"))
    rows = units.annotate(
        station_slug=F("station__slug"),
        model_name=F("deciding_model__name"),
        model_number=F("deciding_model__version"),
        person=Subquery(latest.values("decided_by_user__username")[:1]),
        score=Subquery(deciding.values("defect_probability")[:1]),
    ).values_list(
        "id",
        "station_slug",
        "serial",
        "received_at",
        "captured_at",
        "status",
        "decision_verdict",
        "decision_source",
        "person",
        "decision_reason",
        "decided_at",
        "automation_level",
        "queue_reason",
        "model_name",
        "model_number",
        "score",
        "disagreement",
        "image_width",
        "image_height",
        "image_sha256",
        "blind",
    )
    for row in rows.iterator(chunk_size=CHUNK):
        *values, model_name, model_number, score, disagreement, width, height, sha256, blind = row
        if blind and values[5] == UnitStatus.PENDING:
            score = None  # nothing of the model on a blind unit still waiting for a person
        model = f"{model_name}:{model_number}" if model_name is not None else None
        values += [model, score, disagreement, width, height, sha256]
        yield writer.writerow([_cell(value) for value in values])


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6f}"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text
