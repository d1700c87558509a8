"""The supervision dashboard at a million units (issues 6 and 16): its report read from the rollups,
against the same report read from every row of the period, and against the limit.

    python bench/dashboard.py [--units 1000000] [--stations 4] [--days 7] [--reads 30] [--row-reads 30]

Against the local PostgreSQL (a throwaway database; this benchmark needs it). The units are
written by SQL in bulk with the units page's writer (`units_page.units_write`: three model
versions one after the other, 93 % decided by the model, 5 % by a person after a deferral, an audit
or at human level, 2 % pending, 0.5 % overridden), here over the last `--days` days, through the
touch triggers; every station's champion is then the newest version, at partial automation, so
its live escape rate counts its audits since the beginning. Then:

1. **refresh**: the rollups' first build (every minute from the rows; then a VACUUM of the touches
   it took, as autovacuum would do), then steady-state refreshes after a minute of line traffic
   (new units with their predictions and decisions) and people's verdicts on units of the past
   week, and a refresh with nothing new;
2. **touch cost**: what the triggers add to the line's writes, as single-row inserts of a unit, its
   prediction and its decision event, one transaction per unit, with the touch triggers on and
   off in alternating blocks;
3. **reads**: for the last hour, day and week, the overview (every station) and one station, the
   JSON read from the rollups and from the rows at one instant (identical: `figures_identical`),
   then p50 / p95 of `--reads` reads from the rollups (each group after a refresh, as beat keeps
   them) and of `--row-reads` from the rows, and the **limit**: one count of the period's units
   and decision events with the same filters, what any figure over those rows must read.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import Backends, django_start, embedded_environment, write_result  # noqa: E402
from units_page import DECISIONS_SQL, PREDICTIONS_SQL, UNITS_SQL, units_write  # noqa: E402

LINE_UNITS_PER_ROUND = 100  # about a minute of a line making a million units a week
VERDICTS_PER_ROUND = 20  # people's verdicts on units of the past week, per round
STEADY_ROUNDS = 5
TOUCH_BLOCK_UNITS = 200
TOUCH_BLOCKS = 4  # per side (triggers on, off), alternating
TOUCH_TRIGGERS = {
    "inspection_unit": "inspection_unit_rollup_touch",
    "inspection_prediction": "inspection_prediction_rollup_touch",
    "inspection_decisionevent": "inspection_decisionevent_rollup_touch",
}
OVERRIDES_SQL = """
INSERT INTO inspection_decisionevent (
    unit_id, verdict, defect_classes, regions, decided_by_user_id, reason, policy, created_at
)
SELECT id, CASE WHEN decision_verdict = 'fail' THEN 'pass' ELSE 'fail' END, '[]', '[]', %(person)s,
       'override', '{}', now()
FROM inspection_unit WHERE id = ANY(%(ids)s) AND decision_verdict <> ''
"""


def summary(times: list[float]) -> dict:
    ordered = sorted(times)
    return {
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 1),
        "reads": len(ordered),
    }


def timed_ms(function, repeat: int) -> list[float]:
    function()  # warm-up: connections, caches, plans
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return times


def line_write(*, units: int, count_so_far: int, station_count: int, days: int, person: int) -> None:
    """`units` more units of the line, the last arriving now (with their predictions and decisions),
    and `VERDICTS_PER_ROUND` people's overrides of units of the past week, each in its transaction."""
    from django.db import connection, transaction

    end = count_so_far + units
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT max(id) FROM inspection_unit")
        (last_id,) = cursor.fetchone()
        # the writer spreads units i over `days` before now as i / count: these end at now
        cursor.execute(
            UNITS_SQL,
            {"stations": station_count, "days": days, "count": end, "start": count_so_far, "end": end},
        )
        cursor.execute("SELECT min(id), max(id) FROM inspection_unit WHERE id > %s", [last_id])
        first, last = cursor.fetchone()
        cursor.execute(PREDICTIONS_SQL, {"first": first, "last": last})
        cursor.execute(DECISIONS_SQL, {"first": first, "last": last, "person": person})
    draw = random.Random(end)
    for unit_id in draw.sample(range(1, last_id), VERDICTS_PER_ROUND):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(OVERRIDES_SQL, {"person": person, "ids": [unit_id]})


def refresh_ms(**options) -> tuple[float, object]:
    from inspection.supervision.dashboard.rollups import rollups_refresh

    started = time.perf_counter()
    refreshed = rollups_refresh(**options)
    return (time.perf_counter() - started) * 1000, refreshed


def touch_cost(*, station_count: int, person: int, start: int) -> dict:
    """Single-row writes of a unit, its prediction and its decision event, a transaction per unit,
    with the touch triggers on and off in alternating blocks: the time per unit each way."""
    from django.db import connection, transaction

    def set_triggers(enabled: bool) -> None:
        with connection.cursor() as cursor:
            for table, trigger in TOUCH_TRIGGERS.items():
                cursor.execute(f"ALTER TABLE {table} {'ENABLE' if enabled else 'DISABLE'} TRIGGER {trigger}")

    def one_unit(index: int) -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            # the writer places unit i at days * (1 - i / count) before now: with count i + 1, now
            arguments = {
                "stations": station_count,
                "days": 7,
                "count": index + 1,
                "start": index,
                "end": index + 1,
            }
            cursor.execute(UNITS_SQL + " RETURNING id", arguments)
            (unit_id,) = cursor.fetchone()
            cursor.execute(PREDICTIONS_SQL, {"first": unit_id, "last": unit_id})
            cursor.execute(DECISIONS_SQL, {"first": unit_id, "last": unit_id, "person": person})

    per_unit: dict[bool, list[float]] = {True: [], False: []}
    index = start
    try:
        for block in range(2 * TOUCH_BLOCKS):
            enabled = block % 2 == 0
            set_triggers(enabled)
            for _ in range(TOUCH_BLOCK_UNITS):
                started = time.perf_counter()
                one_unit(index)
                per_unit[enabled].append((time.perf_counter() - started) * 1e6)
                index += 1
    finally:
        set_triggers(True)
    with_touches, without = statistics.median(per_unit[True]), statistics.median(per_unit[False])
    return {
        "units_each_way": len(per_unit[True]),
        "rows_per_unit": 3,
        "median_us_per_unit_with_touches": round(with_touches),
        "median_us_per_unit_without": round(without),
        "added_us_per_unit": round(with_touches - without),
        "added_us_per_row": round((with_touches - without) / 3, 1),
    }


def profile(function) -> None:
    """The cumulative profile of five calls (after one), and the SQL each query took."""
    import cProfile
    import pstats

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    function()
    with CaptureQueriesContext(connection) as queries:
        function()
    for query in sorted(queries.captured_queries, key=lambda q: -float(q["time"]))[:12]:
        print(f"{float(query['time']) * 1000:8.1f} ms  {query['sql'][:400]}")
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(5):
        function()
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--stations", type=int, default=4)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--reads", type=int, default=30)
    parser.add_argument("--row-reads", type=int, default=30)
    parser.add_argument(
        "--profile",
        choices=["hour", "day", "week"],
        help="profile the overview of this period from the rollups",
    )
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="loupe-bench-dashboard-"))
    backends = Backends(data_dir, embedded=False, name="dashboard")
    try:
        if not backends.database_url:
            raise SystemExit("skipped: this benchmark needs the local PostgreSQL")
        django_start({**embedded_environment(data_dir), **backends.environment(), "DJANGO_DEBUG": "0"})
        from django.contrib.auth.models import User
        from django.db import connection
        from django.utils import timezone

        from inspection.models import DecisionEvent, Station, Unit
        from inspection.supervision.dashboard.periods import PERIODS, window_at
        from inspection.supervision.dashboard.report import dashboard_overview, dashboard_station
        from models_registry.models import ModelVersion

        clock = time.monotonic()
        units_write(args.units, args.stations, days=args.days)
        written_s = time.monotonic() - clock
        newest = ModelVersion.objects.order_by("-version").first()
        Station.objects.update(champion=newest, automation_level="partial")
        person = User.objects.get(username="ines").pk
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM inspection_rolluptouch")
            (touches_written,) = cursor.fetchone()
            cursor.execute("ANALYZE")
        print(f"{args.units} units written in {written_s:.0f} s ({touches_written} touches)", flush=True)

        build_ms, built = refresh_ms(rebuild=True)
        with connection.cursor() as cursor:
            # The build took the bulk write's millions of touches: their empty pages, which each read
            # scans until a vacuum truncates them, go now (autovacuum's job, when reads let it lock).
            cursor.execute("VACUUM ANALYZE")
        print(f"first build: {build_ms / 1000:.1f} s, {built.minutes_counted} minutes", flush=True)
        if args.profile:
            profile(lambda: dashboard_overview(period=PERIODS[args.profile]))
            return
        steady = []
        count_so_far = args.units
        for _ in range(STEADY_ROUNDS):
            line_write(
                units=LINE_UNITS_PER_ROUND,
                count_so_far=count_so_far,
                station_count=args.stations,
                days=args.days,
                person=person,
            )
            count_so_far += LINE_UNITS_PER_ROUND
            took, refreshed = refresh_ms()
            steady.append(
                {"ms": round(took, 1), "minutes": refreshed.minutes_counted, "touches": refreshed.touches}
            )
            print("steady refresh", steady[-1], flush=True)
        idle_ms = statistics.median(refresh_ms()[0] for _ in range(10))
        cost = touch_cost(station_count=args.stations, person=person, start=count_so_far)
        print("touch cost", cost, flush=True)
        refresh_ms()

        station = Station.objects.order_by("slug").first()
        rows = {}
        for name, period in PERIODS.items():
            for scope in ("overview", "station"):
                if scope == "overview":

                    def report(from_rows: bool, now=None, period=period) -> dict:
                        return dashboard_overview(period=period, now=now, from_rows=from_rows)

                    units = Unit.objects.all()
                    decisions = DecisionEvent.objects.all()
                else:

                    def report(from_rows: bool, now=None, period=period) -> dict:
                        return dashboard_station(station=station, period=period, now=now, from_rows=from_rows)

                    units = Unit.objects.filter(station=station)
                    decisions = DecisionEvent.objects.filter(unit__station=station)

                def limit(units=units, decisions=decisions, period=period) -> int:
                    start = window_at(period=period, now=timezone.now()).start
                    return (
                        units.filter(received_at__gte=start).count()
                        + decisions.filter(created_at__gte=start).count()
                    )

                refresh_ms()
                instant = timezone.now()
                identical = report(False, instant) == report(True, instant)
                rollup_times = timed_ms(lambda report=report: report(False), args.reads)
                row_times = timed_ms(lambda report=report: report(True), args.row_reads)
                limit_times = timed_ms(limit, args.reads)
                rows[f"{name}, {scope}"] = {
                    "units_in_period": units.filter(
                        received_at__gte=window_at(period=period, now=timezone.now()).start
                    ).count(),
                    "figures_identical": identical,
                    "rollups": summary(rollup_times),
                    "rows": summary(row_times),
                    "limit": summary(limit_times),
                }
                print(f"{name:5} {scope:9}", rows[f"{name}, {scope}"], flush=True)
        worst = max(row["rollups"]["p95_ms"] for row in rows.values())
        path = write_result(
            "dashboard",
            {
                "backends": backends.describe(),
                "units": args.units,
                "stations": args.stations,
                "days": args.days,
                "written_s": round(written_s),
                "touches_written": touches_written,
                "first_build_s": round(build_ms / 1000, 1),
                "first_build_minutes": built.minutes_counted,
                "steady_refreshes": steady,
                "idle_refresh_ms": round(idle_ms, 1),
                "touch_cost": cost,
                "reads": rows,
                "goal": {
                    "every period's p95 from the rollups, ms": worst,
                    "goal_ms": 100,
                    "met": worst <= 100,
                    "figures_identical": all(row["figures_identical"] for row in rows.values()),
                },
            },
        )
        print(f"written to {path}")
    finally:
        backends.close()


if __name__ == "__main__":
    main()
