"""Prometheus metrics at `/metrics`: HTTP traffic counted by `RequestMetricsMiddleware`, and figures
read from the database at scrape time by `DatabaseCollector`. Several processes, the token: see
docs/operations.md."""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from urllib.parse import urlsplit

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.db.models import Count, Min, Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_safe
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from config.line_http import QUEUED_AT
from config.processes import MULTIPROCESS_DIRECTORY_VARIABLE
from inspection.enums import DecisionReason, UnitStatus
from inspection.models import DecisionEvent, Station, Unit
from inspection.supervision.dashboard.latency import unit_post_observe
from inspection.supervision.models import ACTIVE_ALARM_STATUSES, Alarm, AlarmKind
from workers.models import TrainingJob, TrainingStatus

# Up to the line API's 30 s long-poll (GET /api/v1/units/{id}/?wait=30) and a little past it.
LATENCY_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The (source, reason) pairs a decision can have, reported at zero before the first one, so that
# rate() sees every series from its start.
DECISION_SOURCES_AND_REASONS = (
    ("model", DecisionReason.AUTOMATIC),
    ("human", DecisionReason.DEFERRED),
    ("human", DecisionReason.AUDIT),
    ("human", DecisionReason.HUMAN),
    ("human", DecisionReason.OVERRIDE),
)

HTTP_REQUESTS = Counter(
    "loupe_http_requests",
    "HTTP requests answered, by method, URL pattern and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "loupe_http_request_duration_seconds",
    "Time from the request reaching Django to its response, by method, URL pattern and status class.",
    ["method", "route", "status_class"],
    buckets=LATENCY_BUCKETS_SECONDS,
)


def route_label(request: HttpRequest) -> str:
    """The request's URL pattern, never its path: bounded whatever ids the paths carry."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.view_name if match.url_name else (match.route or "unnamed")
    if request.path_info.startswith(urlsplit(settings.STATIC_URL).path):
        return "static"
    return "unmatched"


def request_observe(request: HttpRequest, response: HttpResponse | None, seconds: float) -> None:
    """Count one answered request and its latency (a response that never came counts as a 500),
    and give a line post's time to the dashboard too."""
    method = request.method if request.method in KNOWN_METHODS else "other"
    route = route_label(request)
    status = response.status_code if response is not None else 500
    HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
    HTTP_REQUEST_DURATION.labels(method=method, route=route, status_class=f"{status // 100}xx").observe(
        seconds
    )
    unit_post_observe(request, response, seconds)


class RequestMetricsMiddleware:
    """Counts and times every request; first in `MIDDLEWARE`, so the time covers the whole stack.

    Sync and async capable: under ASGI Django calls it in whichever mode the middleware below it
    runs (today sync, since WhiteNoise is), without a thread switch of its own.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.is_async:
            return self._acall(request)
        started = _arrived(request)
        response = None
        try:
            response = self.get_response(request)
            return response
        finally:
            request_observe(request, response, time.perf_counter() - started)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        started = _arrived(request)
        response = None
        try:
            response = await self.get_response(request)
            return response
        finally:
            request_observe(request, response, time.perf_counter() - started)


def _arrived(request: HttpRequest) -> float:
    """When the request reached the application: a line post may have waited for one of
    config.line_http's threads, and that wait is part of what the line sees."""
    scope = getattr(request, "scope", None)
    return scope.get(QUEUED_AT, time.perf_counter()) if scope else time.perf_counter()


class DatabaseCollector(Collector):
    """Figures read from the database at each scrape: five queries (four of them GROUP BY) whatever
    the number of rows.

    Every station is reported (at zero where it has nothing), so dashboards and alerts see a
    station before its first unit, decision or alarm.
    """

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        now = timezone.now()
        stations = list(Station.objects.order_by("slug").values_list("slug", flat=True))

        units_received = CounterMetricFamily(
            "loupe_units_received", "Units the line posted to the station.", labels=["station"]
        )
        queue_depth = GaugeMetricFamily(
            "loupe_queue_pending_units", "Units waiting for a person's decision.", labels=["station"]
        )
        queue_age = GaugeMetricFamily(
            "loupe_queue_oldest_pending_age_seconds",
            "Age of the oldest unit waiting for a person (0 when none waits).",
            labels=["station"],
        )
        unit_rows = {
            row["station__slug"]: row
            for row in Unit.objects.order_by()
            .values("station__slug")
            .annotate(
                received=Count("id"),
                pending=Count("id", filter=Q(status=UnitStatus.PENDING)),
                oldest_pending=Min("received_at", filter=Q(status=UnitStatus.PENDING)),
            )
        }
        for station in _union(stations, unit_rows):
            row = unit_rows.get(station, {"received": 0, "pending": 0, "oldest_pending": None})
            units_received.add_metric([station], row["received"])
            queue_depth.add_metric([station], row["pending"])
            oldest = row["oldest_pending"]
            queue_age.add_metric([station], max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)
        yield from (units_received, queue_depth, queue_age)

        decisions = CounterMetricFamily(
            "loupe_decisions",
            "Decision events: by the model (source=model) or a person (source=human), and why "
            "(automatic, deferred, audit, human, override).",
            labels=["station", "source", "reason"],
        )
        decision_counts = {
            (station, source, str(reason)): 0
            for station in stations
            for source, reason in DECISION_SOURCES_AND_REASONS
        }
        for row in (
            DecisionEvent.objects.order_by()
            .values("unit__station__slug", "reason")
            .annotate(total=Count("id"), by_model=Count("decided_by_model"))
        ):
            station, reason = row["unit__station__slug"], row["reason"]
            for source, count in (("model", row["by_model"]), ("human", row["total"] - row["by_model"])):
                if count or (station, source, reason) in decision_counts:
                    decision_counts[(station, source, reason)] = count
        for labels, count in sorted(decision_counts.items()):
            decisions.add_metric(list(labels), count)
        yield decisions

        alarms = GaugeMetricFamily(
            "loupe_alarms_open",
            "Drift alarms not cleared yet, by kind and status (open, or acknowledged by a supervisor).",
            labels=["station", "kind", "status"],
        )
        alarm_counts = {
            (station, str(kind), str(status)): 0
            for station in stations
            for kind in AlarmKind
            for status in ACTIVE_ALARM_STATUSES
        }
        for row in (
            Alarm.objects.filter(status__in=ACTIVE_ALARM_STATUSES)
            .order_by()
            .values("station__slug", "kind", "status")
            .annotate(count=Count("id"))
        ):
            alarm_counts[(row["station__slug"], row["kind"], row["status"])] = row["count"]
        for labels, count in sorted(alarm_counts.items()):
            alarms.add_metric(list(labels), count)
        yield alarms

        training_jobs = GaugeMetricFamily(
            "loupe_training_jobs", "Retraining jobs by status.", labels=["status"]
        )
        job_counts = dict.fromkeys(TrainingStatus.values, 0)
        job_counts.update(
            TrainingJob.objects.order_by()
            .values("status")
            .annotate(count=Count("id"))
            .values_list("status", "count")
        )
        for status, count in sorted(job_counts.items()):
            training_jobs.add_metric([status], count)
        yield training_jobs

        yield GaugeMetricFamily(
            "loupe_metrics_database_seconds",
            "How long this scrape's database queries took.",
            value=time.perf_counter() - started,
        )


def _union(stations: list[str], rows: dict[str, object]) -> list[str]:
    """Every station, and any a row names that was created after the station list was read."""
    return sorted(set(stations) | set(rows))


def scrape_registry() -> CollectorRegistry:
    """What one scrape reports: this process's (or, in multiprocess mode, every process's) HTTP
    figures and the database's."""
    registry = CollectorRegistry()
    multiprocess_directory = os.environ.get(MULTIPROCESS_DIRECTORY_VARIABLE)
    if multiprocess_directory:
        MultiProcessCollector(registry, path=multiprocess_directory)
    else:
        registry.register(REGISTRY)
    registry.register(DatabaseCollector())
    return registry


def bearer_token_matches(request: HttpRequest, token: str) -> bool:
    """Whether the request carries `Authorization: Bearer <token>` (compared in constant time)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """`GET /metrics`; behind a bearer token when `LOUPE_METRICS_TOKEN` is set."""
    token = settings.LOUPE_METRICS_TOKEN
    if token and not bearer_token_matches(request, token):
        response = HttpResponse(
            "metrics need an Authorization: Bearer <token> header with the right token\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="loupe-metrics"'
        return response
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(scrape_registry()), content_type=content_type)
