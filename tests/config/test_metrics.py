"""The Prometheus endpoint: HTTP figures labelled by URL pattern (never by path), database figures
that match the rows they count, the bearer token, and several processes summed in multiprocess mode.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction
from django.contrib.auth.models import User
from django.db import connection
from django.http import HttpResponse
from django.test import AsyncClient, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import resolve
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from config.metrics import RequestMetricsMiddleware
from inspection.enums import AutomationLevel, DecisionReason, UnitStatus
from inspection.models import DecisionEvent, Station, Unit
from inspection.services.stations import station_create
from inspection.supervision.models import Alarm, AlarmKind, AlarmStatus
from labeling.models import Dataset, DatasetSnapshot
from models_registry.models import ModelVersion
from tests.inspection.conftest import device_client, make_model_version, make_station, tiny_bundle  # noqa: F401
from tests.inspection.factories import posted_unit
from workers.models import TrainingJob, TrainingStatus, TrainingTrigger

pytestmark = pytest.mark.django_db

REPOSITORY = Path(__file__).resolve().parents[2]
Samples = dict[tuple[str, frozenset], float]


def scrape(client, **headers: str) -> Samples:
    """Every sample of a 200 scrape, by name and labels."""
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return samples_of(response.content.decode())


def samples_of(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample that must be there (KeyError otherwise: zero-filled series are part of the contract)."""
    return samples[(name, frozenset(labels.items()))]


def value_or_zero(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _station(slug: str) -> Station:
    return station_create(slug=slug, level=AutomationLevel.HUMAN)


def _unit(station: Station, serial: str, *, status: str = UnitStatus.DECIDED, age_seconds: float = 0) -> Unit:
    return Unit.objects.create(
        station=station,
        serial=serial,
        image=f"units/{station.slug}/{serial}.jpg",
        image_sha256="0" * 64,
        image_width=32,
        image_height=32,
        image_format="JPEG",
        received_at=timezone.now() - timedelta(seconds=age_seconds),
        status=status,
        automation_level=station.automation_level,
    )


def _model_version() -> ModelVersion:
    return ModelVersion.objects.create(
        name="counted", version=1, mlflow_run_id="test", source_uri="/nowhere", dataset_name="tiny"
    )


def test_the_exposition_parses_and_has_every_family(client):
    _station("screens-1")
    client.get("/metrics")  # a request counted before the scrape below

    response = client.get("/metrics")

    families = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert {
        "loupe_http_requests",
        "loupe_http_request_duration_seconds",
        "loupe_units_received",
        "loupe_decisions",
        "loupe_queue_pending_units",
        "loupe_queue_oldest_pending_age_seconds",
        "loupe_alarms_open",
        "loupe_training_jobs",
        "loupe_metrics_database_seconds",
    } <= families
    assert "process_cpu_seconds" in families  # single-process mode also reports the process


def test_a_posted_unit_is_counted_and_timed_under_its_route(make_station, device_client, media_root):  # noqa: F811
    station = make_station(slug="screens-1", level=AutomationLevel.FULL)
    line = device_client(station)
    request = {"method": "POST", "route": "unit-list"}
    before = scrape(line)

    body = posted_unit(line, serial="SN-1")

    after = scrape(line)
    assert body["status"] == "decided" and body["decided_by"] == "model"
    requests_name = "loupe_http_requests_total"
    assert value(after, requests_name, **request, status="201") == (
        value_or_zero(before, requests_name, **request, status="201") + 1
    )
    count_name = "loupe_http_request_duration_seconds_count"
    assert value(after, count_name, **request, status_class="2xx") == (
        value_or_zero(before, count_name, **request, status_class="2xx") + 1
    )
    sum_name = "loupe_http_request_duration_seconds_sum"
    assert value(after, sum_name, **request, status_class="2xx") > value_or_zero(
        before, sum_name, **request, status_class="2xx"
    )
    # The same unit, from the database's side.
    assert value(after, "loupe_units_received_total", station="screens-1") == 1
    assert value(after, "loupe_decisions_total", station="screens-1", source="model", reason="automatic") == 1
    assert value(after, "loupe_queue_pending_units", station="screens-1") == 0


def test_paths_with_ids_never_become_labels(make_station, device_client, media_root):  # noqa: F811
    station = make_station(slug="screens-1", level=AutomationLevel.FULL)
    line = device_client(station)
    unit_id = posted_unit(line, serial="SN-1")["id"]
    assert line.get(f"/api/v1/units/{unit_id}/").status_code == 200
    assert line.get(f"/api/v1/units/{unit_id + 1000}/").status_code == 404
    assert line.get("/no/such/path/987654").status_code == 404
    assert line.get("/static/js/station.js").status_code == 200  # WhiteNoise, no URL pattern

    samples = scrape(line)

    label_values = {value for _, labels in samples for _, value in labels}
    assert not [value for value in label_values if "/" in value and ("units" in value or "js" in value)]
    assert not [value for value in label_values if str(unit_id + 1000) in value or "987654" in value]
    routes = {dict(labels).get("route") for name, labels in samples if name == "loupe_http_requests_total"}
    assert {"unit-list", "unit-detail", "unmatched", "static", "metrics"} <= routes
    assert value(samples, "loupe_http_requests_total", method="GET", route="unit-detail", status="404") >= 1


def test_decisions_are_counted_by_station_source_and_reason():
    line_1, line_2 = _station("line-1"), _station("line-2")
    model_version = _model_version()
    inspector = User.objects.create_user("ines")
    for index in range(3):
        unit = _unit(line_1, f"A-{index}")
        DecisionEvent.objects.create(
            unit=unit, verdict="pass", reason=DecisionReason.AUTOMATIC, decided_by_model=model_version
        )
    overridden = Unit.objects.filter(station=line_1).first()
    DecisionEvent.objects.create(
        unit=overridden, verdict="fail", reason=DecisionReason.OVERRIDE, decided_by_user=inspector
    )
    for index in range(2):
        unit = _unit(line_1, f"D-{index}")
        DecisionEvent.objects.create(
            unit=unit, verdict="fail", reason=DecisionReason.DEFERRED, decided_by_user=inspector
        )
    DecisionEvent.objects.create(
        unit=_unit(line_2, "B-1"), verdict="pass", reason=DecisionReason.AUDIT, decided_by_user=inspector
    )

    samples = scrape(RequestFactoryClient())

    def decisions(station: str, source: str, reason: str) -> float:
        return value(samples, "loupe_decisions_total", station=station, source=source, reason=reason)

    assert decisions("line-1", "model", "automatic") == 3
    assert decisions("line-1", "human", "override") == 1
    assert decisions("line-1", "human", "deferred") == 2
    assert decisions("line-1", "human", "audit") == 0
    assert decisions("line-2", "human", "audit") == 1
    assert decisions("line-2", "model", "automatic") == 0
    assert decisions("line-2", "human", "human") == 0
    assert (
        "loupe_decisions_total",
        frozenset({"station": "line-1", "source": "model", "reason": "override"}.items()),
    ) not in samples  # a model never overrides: no such series
    assert value(samples, "loupe_units_received_total", station="line-1") == 5
    assert value(samples, "loupe_units_received_total", station="line-2") == 1


def test_queue_depth_and_the_oldest_pending_age_per_station():
    busy, idle = _station("busy"), _station("idle")
    _unit(busy, "P-1", status=UnitStatus.PENDING, age_seconds=300)
    _unit(busy, "P-2", status=UnitStatus.PENDING, age_seconds=60)
    _unit(busy, "P-3", status=UnitStatus.PENDING, age_seconds=5)
    _unit(busy, "done", status=UnitStatus.DECIDED, age_seconds=3600)  # decided: not waiting
    _unit(idle, "done", status=UnitStatus.DECIDED, age_seconds=7200)

    samples = scrape(RequestFactoryClient())

    assert value(samples, "loupe_queue_pending_units", station="busy") == 3
    assert 300 <= value(samples, "loupe_queue_oldest_pending_age_seconds", station="busy") < 330
    assert value(samples, "loupe_queue_pending_units", station="idle") == 0
    assert value(samples, "loupe_queue_oldest_pending_age_seconds", station="idle") == 0
    assert value(samples, "loupe_units_received_total", station="busy") == 4


def test_the_database_figures_cost_the_same_few_queries_however_many_rows():
    for index in range(3):
        station = _station(f"line-{index}")
        for serial in range(4):
            _unit(station, f"{index}-{serial}", status=UnitStatus.PENDING, age_seconds=serial)

    with CaptureQueriesContext(connection) as queries:
        scrape(RequestFactoryClient())

    assert len(queries) == 5  # stations, then units, decisions, alarms, jobs each in one GROUP BY
    assert sum("GROUP BY" in query["sql"] for query in queries.captured_queries) == 4


def test_open_and_acknowledged_alarms_are_counted_and_cleared_ones_are_not():
    line_1, line_2 = _station("line-1"), _station("line-2")
    now = timezone.now()

    def alarm(station: Station, kind: str, status: str) -> Alarm:
        return Alarm.objects.create(
            station=station, kind=kind, status=status, summary=f"{kind} at {station}", last_seen_at=now
        )

    alarm(line_1, AlarmKind.INPUT, AlarmStatus.OPEN)
    alarm(line_1, AlarmKind.SCORE, AlarmStatus.ACKNOWLEDGED)
    alarm(line_1, AlarmKind.EMBEDDING, AlarmStatus.CLEARED)
    alarm(line_1, AlarmKind.EMBEDDING, AlarmStatus.CLEARED)
    alarm(line_2, AlarmKind.AGREEMENT, AlarmStatus.OPEN)

    samples = scrape(RequestFactoryClient())

    def alarms(station: str, kind: str, status: str) -> float:
        return value(samples, "loupe_alarms_open", station=station, kind=kind, status=status)

    assert alarms("line-1", "input_drift", "open") == 1
    assert alarms("line-1", "score_shift", "acknowledged") == 1
    assert alarms("line-1", "score_shift", "open") == 0
    assert alarms("line-1", "embedding_drift", "open") == 0
    assert alarms("line-1", "embedding_drift", "acknowledged") == 0
    assert alarms("line-2", "audit_agreement", "open") == 1
    assert alarms("line-2", "input_drift", "open") == 0
    assert not [
        labels for name, labels in samples if name == "loupe_alarms_open" and ("status", "cleared") in labels
    ]


def test_training_jobs_by_status():
    line_1, line_2 = _station("line-1"), _station("line-2")
    dataset = Dataset.objects.create(name="line-1-data", station=line_1)

    def job(station: Station, status: str) -> TrainingJob:
        version = DatasetSnapshot.objects.filter(dataset=dataset).count() + 1
        snapshot = DatasetSnapshot.objects.create(dataset=dataset, version=version)
        return TrainingJob.objects.create(
            station=station,
            snapshot=snapshot,
            status=status,
            trigger=TrainingTrigger.LABELS,
            labels_as_of=timezone.now(),
        )

    job(line_1, TrainingStatus.RUNNING)
    job(line_1, TrainingStatus.REJECTED)
    job(line_1, TrainingStatus.REJECTED)
    job(line_1, TrainingStatus.FAILED)
    job(line_2, TrainingStatus.QUEUED)

    samples = scrape(RequestFactoryClient())

    counts = {
        status: value(samples, "loupe_training_jobs", status=status) for status in TrainingStatus.values
    }
    assert counts == {"queued": 1, "running": 1, "shadow": 0, "passed": 0, "rejected": 2, "failed": 1}


def test_a_token_in_the_settings_is_required_as_a_bearer_token(client, settings):
    settings.LOUPE_METRICS_TOKEN = "s3cret-metrics-token"

    missing = client.get("/metrics")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    other_scheme = client.get("/metrics", HTTP_AUTHORIZATION="Api-Key s3cret-metrics-token")
    right = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token")

    for refused in (missing, wrong, other_scheme):
        assert refused.status_code == 401
        assert refused["WWW-Authenticate"].startswith("Bearer")
        assert b"loupe_" not in refused.content
    assert right.status_code == 200
    assert "loupe_units_received" in {f.name for f in text_string_to_metric_families(right.content.decode())}


def test_without_a_token_the_endpoint_is_open_and_only_reads(client, settings):
    settings.LOUPE_METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200
    assert client.post("/metrics").status_code == 405


def test_the_middleware_counts_requests_on_the_async_path_too():
    async def view(request):
        request.resolver_match = resolve(request.path_info)  # as Django's handler does
        return HttpResponse(status=204)

    middleware = RequestMetricsMiddleware(view)
    labels = {"method": "DELETE", "route": "unit-detail", "status": "204"}
    before = value_or_zero(scrape(RequestFactoryClient()), "loupe_http_requests_total", **labels)

    response = async_to_sync(middleware)(RequestFactory().delete("/api/v1/units/41/"))

    assert iscoroutinefunction(middleware) and response.status_code == 204
    after = scrape(RequestFactoryClient())
    assert value(after, "loupe_http_requests_total", **labels) == before + 1
    assert not [labels for name, labels in after if ("route", "/api/v1/units/41/") in labels]


def test_the_whole_stack_counts_an_async_client_request():
    labels = {"method": "GET", "route": "metrics", "status": "200"}
    before = value_or_zero(scrape(RequestFactoryClient()), "loupe_http_requests_total", **labels)

    response = async_to_sync(AsyncClient().get)("/metrics")

    assert response.status_code == 200
    assert value(scrape(RequestFactoryClient()), "loupe_http_requests_total", **labels) == before + 1


MULTIPROCESS_WEB_PROCESS = textwrap.dedent(
    """
    import os, django
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.http import HttpResponse
    from django.test import RequestFactory
    from django.urls import resolve
    from config.metrics import RequestMetricsMiddleware

    def view(request):
        request.resolver_match = resolve(request.path_info)
        return HttpResponse(status=200)

    RequestMetricsMiddleware(view)(RequestFactory().get("/api/v1/units/%d/" % os.getpid()))
    """
)


def test_multiprocess_mode_sums_every_web_process(client, monkeypatch, tmp_path):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", MULTIPROCESS_WEB_PROCESS],
            cwd=REPOSITORY,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    for process in processes:
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output.decode(errors="replace")
    assert len(list(directory.glob("*.db"))) >= 2  # one file set per process
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    _station("screens-1")

    samples = scrape(client)

    labels = {"method": "GET", "route": "unit-detail", "status": "200"}
    assert value(samples, "loupe_http_requests_total", **labels) == 2
    assert (
        value(
            samples,
            "loupe_http_request_duration_seconds_count",
            method="GET",
            route="unit-detail",
            status_class="2xx",
        )
        == 2
    )
    assert (
        value(samples, "loupe_units_received_total", station="screens-1") == 0
    )  # the database's figures too
    # This test process keeps its counts in memory (it started without the variable): not reported.
    assert not [name for name, _ in samples if name.startswith("process_")]


class RequestFactoryClient:
    """Scrapes by calling the view directly, so that a test's figures are read without a request
    of the test client's own being counted in between."""

    def get(self, path: str, **headers: str) -> HttpResponse:
        from config.metrics import metrics_view

        return metrics_view(RequestFactory().get(path, **headers))
