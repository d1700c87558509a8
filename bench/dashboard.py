"""The supervision dashboard's report at volume (issue 6): how long its JSON takes to compute
with a week of units, against the time to merely read the same rows.

    python bench/dashboard.py [--units 200000] [--stations 4] [--repeat 5]

Against the local PostgreSQL (a throwaway database; this benchmark needs it). A week of units is
written with `bulk_create` (arrival times uniform over the last 7 days, spread over the stations,
90 % decided by the model, 10 % by a person after an audit or deferral, 2 % still pending), with a
prediction per unit and a decision event a second after arrival. Then, for the last hour / day /
week, the report of every station (`dashboard_overview`) and of one station (`dashboard_station`)
are timed (median of `--repeat` runs after a warm-up), each against the **limit**: one query that
counts the period's units and decision events (`COUNT(*)` over the same rows with the same
filters), what any figure over those rows must at least read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import Backends, django_start, embedded_environment, write_result  # noqa: E402

CHUNK = 5000


def units_write(count: int, station_count: int) -> None:
    import random

    from django.contrib.auth.models import User
    from django.db import connection
    from django.utils import timezone

    from inspection.models import DecisionEvent, Prediction, Station, Unit
    from models_registry.models import ModelVersion

    model = ModelVersion.objects.create(
        name="bench", version=1, mlflow_run_id="bench", source_uri="bench", architecture="bench"
    )
    person = User.objects.create_user("ines")
    stations = [
        Station.objects.create(slug=f"line-{i}", name=f"Line {i}", champion=model, automation_level="full")
        for i in range(station_count)
    ]
    rng = random.Random(0)
    now = timezone.now()
    for start in range(0, count, CHUNK):
        units = []
        for index in range(start, min(count, start + CHUNK)):
            draw = rng.random()
            reason = "" if draw < 0.88 else ("audit" if draw < 0.93 else "deferred")
            pending = reason and rng.random() < 0.2
            units.append(
                Unit(
                    station=stations[index % station_count],
                    serial=f"SN{index}",
                    image="bench.jpg",
                    image_sha256=f"{index:064x}",
                    image_width=640,
                    image_height=360,
                    image_format="JPEG",
                    received_at=now - timedelta(seconds=rng.uniform(0, 7 * 86400)),
                    status="pending" if pending else "decided",
                    automation_level="full",
                    queue_reason=reason,
                    blind=reason == "audit",
                    deciding_model=model,
                )
            )
        Unit.objects.bulk_create(units)
        made = Unit.objects.filter(serial__in=[u.serial for u in units]).values_list(
            "id", "queue_reason", "status"
        )
        predictions, decisions = [], []
        for unit_id, reason, status in made:
            verdict = "fail" if rng.random() < 0.1 else "pass"
            predictions.append(
                Prediction(
                    unit_id=unit_id,
                    model_version=model,
                    role="champion",
                    defect_probability=0.9 if verdict == "fail" else 0.1,
                    label="crack" if verdict == "fail" else "no_defect",
                    confidence=0.9,
                    verdict=verdict,
                    latency_ms=10.0,
                )
            )
            if status == "decided":
                by_model = not reason
                decisions.append(
                    DecisionEvent(
                        unit_id=unit_id,
                        verdict=verdict
                        if by_model or rng.random() < 0.95
                        else ("pass" if verdict == "fail" else "fail"),
                        decided_by_model=model if by_model else None,
                        decided_by_user=None if by_model else person,
                        reason="automatic" if by_model else reason,
                    )
                )
        Prediction.objects.bulk_create(predictions)
        DecisionEvent.objects.bulk_create(decisions)
        print(f"  {min(count, start + CHUNK)}/{count} units", flush=True)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE inspection_decisionevent d SET created_at = u.received_at + interval '1 second' "
            "FROM inspection_unit u WHERE u.id = d.unit_id"
        )
        cursor.execute(
            "UPDATE inspection_prediction p SET created_at = u.received_at "
            "FROM inspection_unit u WHERE u.id = p.unit_id"
        )
        cursor.execute("ANALYZE")


def median_ms(function, repeat: int) -> float:
    function()  # warm-up: connections, caches
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=200_000)
    parser.add_argument("--stations", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="loupe-bench-dashboard-"))
    backends = Backends(data_dir, embedded=False, name="dashboard")
    try:
        if not backends.database_url:
            raise SystemExit("skipped: this benchmark needs the local PostgreSQL")
        django_start({**embedded_environment(data_dir), **backends.environment()})
        from django.utils import timezone

        from inspection.models import DecisionEvent, Station, Unit
        from inspection.supervision.dashboard.periods import period_get
        from inspection.supervision.dashboard.report import dashboard_overview, dashboard_station

        clock = time.monotonic()
        units_write(args.units, args.stations)
        print(f"{args.units} units written in {time.monotonic() - clock:.0f} s", flush=True)
        station = Station.objects.order_by("slug").first()
        rows = {}
        for name in ("hour", "day", "week"):
            period = period_get(name)

            def read_all(period=period, station=None):
                since = timezone.now() - timedelta(seconds=period.bucket_seconds * period.bucket_count)
                units = Unit.objects.filter(received_at__gte=since)
                decisions = DecisionEvent.objects.filter(created_at__gte=since)
                if station is not None:
                    units, decisions = units.filter(station=station), decisions.filter(unit__station=station)
                return units.count() + decisions.count()

            overview = median_ms(lambda period=period: dashboard_overview(period=period), args.repeat)
            overview_limit = median_ms(read_all, args.repeat)
            one = median_ms(
                lambda period=period: dashboard_station(station=station, period=period), args.repeat
            )
            one_limit = median_ms(lambda: read_all(station=station), args.repeat)
            rows[name] = {
                "units_in_period": Unit.objects.filter(
                    received_at__gte=timezone.now()
                    - timedelta(seconds=period.bucket_seconds * period.bucket_count)
                ).count(),
                "overview_ms": round(overview, 1),
                "overview_count_ms": round(overview_limit, 1),
                "overview_ratio": round(overview / overview_limit, 2),
                "station_ms": round(one, 1),
                "station_count_ms": round(one_limit, 1),
                "station_ratio": round(one / one_limit, 2),
            }
            print(name, rows[name], flush=True)
        path = write_result(
            "dashboard",
            {
                "backends": backends.describe(),
                "units": args.units,
                "stations": args.stations,
                "periods": rows,
            },
        )
        print(f"written to {path}")
    finally:
        backends.close()


if __name__ == "__main__":
    main()
