"""The units page at a million units (issue 14): p50/p95 of a filtered page, deep cursor pages,
and the CSV export's memory against its size.

    python bench/units_page.py [--units 1000000] [--stations 4] [--requests 30]

Against the local PostgreSQL (a throwaway database; this benchmark needs it). The units are
written by SQL in bulk, as a line makes them over 30 days: 4 stations, three model versions one
after the other, 93 % decided by the model, 5 % by a person (deferred, audited, human-only),
2 % pending, 0.5 % overridden, 3 % with a disagreement, one prediction each and a decision event
per decision. Then the page (`GET /units/?…`, the whole view: sign-in, filter form, keyset query,
the cards' decisions and predictions, the template) is requested `--requests` times per search
through Django's test client, and timed.

The limit each search is held against is measured in the same run: the newest page with no
filter, which reads exactly the rows it shows (the least any page can do). A filtered page costs
more only by the rows its filter makes the index scan skip. The export is streamed for a
filtered search, one station and every unit, with the process's peak resident memory over each
(the kernel's high-water mark, reset before): flat memory means it does not grow with the rows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import Backends, django_start, embedded_environment, write_result  # noqa: E402

DAYS = 30

UNITS_SQL = """
INSERT INTO inspection_unit (
    station_id, serial, image, image_sha256, image_width, image_height, image_format,
    source_filename, received_at, metadata, status, automation_level, queue_reason, blind,
    deciding_model_id, routing, first_response, decision_verdict, decision_source,
    decision_reason, decided_at, disagreement
)
SELECT
    s.ids[1 + (i %% %(stations)s)],
    'SN' || lpad(i::text, 8, '0'),
    'units/bench.jpg', md5(i::text) || md5((i + 1)::text), 1920, 1080, 'JPEG', '',
    -- arrival: evenly over the days, oldest first (so ids and times grow together, as on a line)
    now() - (%(days)s * interval '1 day') * (1 - i::float / %(count)s),
    '{}', CASE WHEN d.draw < 0.02 THEN 'pending' ELSE 'decided' END, 'partial',
    CASE WHEN d.draw < 0.02 THEN 'deferred'
         WHEN d.draw < 0.07 THEN (ARRAY['deferred', 'audit', 'human'])[1 + i %% 3]
         ELSE '' END,
    d.draw >= 0.02 AND d.draw < 0.07 AND i %% 3 > 0,
    m.ids[1 + least(2, (i * 3) / %(count)s)],
    '{"level": "partial", "target_escape_rate": 0.01, "required_confidence": 0.97}', '{}',
    CASE WHEN d.draw < 0.02 THEN '' WHEN d.verdict_draw < 0.08 THEN 'fail' ELSE 'pass' END,
    CASE WHEN d.draw < 0.02 THEN ''
         WHEN d.draw < 0.07 OR d.override_draw < 0.005 THEN 'human'
         ELSE 'model' END,
    CASE WHEN d.draw < 0.02 THEN ''
         WHEN d.override_draw < 0.005 THEN 'override'
         WHEN d.draw < 0.07 THEN (ARRAY['deferred', 'audit', 'human'])[1 + i %% 3]
         ELSE 'automatic' END,
    CASE WHEN d.draw < 0.02 THEN NULL
         ELSE now() - (%(days)s * interval '1 day') * (1 - i::float / %(count)s) + interval '2 seconds'
    END,
    d.draw >= 0.02 AND d.disagreement_draw < 0.03
FROM generate_series(%(start)s, %(end)s - 1) AS i
CROSS JOIN LATERAL (
    SELECT
        (hashtext(i::text || 'a') & 1048575) / 1048576.0 AS draw,
        (hashtext(i::text || 'v') & 1048575) / 1048576.0 AS verdict_draw,
        (hashtext(i::text || 'o') & 1048575) / 1048576.0 AS override_draw,
        (hashtext(i::text || 'x') & 1048575) / 1048576.0 AS disagreement_draw
) AS d
CROSS JOIN (SELECT array_agg(id ORDER BY slug) AS ids FROM inspection_station) AS s
CROSS JOIN (SELECT array_agg(id ORDER BY version) AS ids FROM models_registry_modelversion) AS m
"""

PREDICTIONS_SQL = """
INSERT INTO inspection_prediction (
    unit_id, model_version_id, role, defect_probability, label, confidence, verdict, class_scores,
    regions, regions_corrected, embedding, latency_ms, timings_ms, created_at
)
SELECT u.id, u.deciding_model_id, 'champion',
       CASE WHEN u.decision_verdict = 'fail' THEN 0.93 ELSE 0.04 END,
       CASE WHEN u.decision_verdict = 'fail' THEN 'scratch' ELSE 'no_defect' END, 0.98,
       CASE WHEN u.decision_verdict = 'fail' THEN 'fail' ELSE 'pass' END,
       '{"scratch": 0.5, "crack": 0.2, "stain": 0.1}',
       CASE WHEN u.decision_verdict = 'fail'
            THEN '[{"x": 812.5, "y": 440.0, "width": 220.0, "height": 96.0, "label": "scratch",
                    "score": 0.91}]'::jsonb
            ELSE '[]'::jsonb END,
       '', '{}', 18.0, '{}', u.received_at
FROM inspection_unit u WHERE u.id BETWEEN %(first)s AND %(last)s
"""

DECISIONS_SQL = """
INSERT INTO inspection_decisionevent (
    unit_id, verdict, defect_classes, regions, decided_by_model_id, decided_by_user_id, reason,
    policy, created_at
)
SELECT u.id, u.decision_verdict, '[]',
       CASE WHEN u.decision_verdict = 'fail'
            THEN '[{"x": 812.5, "y": 440.0, "width": 220.0, "height": 96.0, "label": "scratch"}]'::jsonb
            ELSE '[]'::jsonb END,
       CASE WHEN u.decision_source = 'model' THEN u.deciding_model_id END,
       CASE WHEN u.decision_source = 'human' THEN %(person)s END,
       u.decision_reason, u.routing, u.decided_at
FROM inspection_unit u
WHERE u.id BETWEEN %(first)s AND %(last)s AND u.decision_verdict <> ''
"""

CHUNK = 250_000


def units_write(count: int, station_count: int, days: int = DAYS) -> None:
    """`count` units at `station_count` stations over the last `days` days, as the module's
    docstring says (also the dashboard's benchmark's writer)."""
    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from inspection.models import Station
    from models_registry.models import ModelVersion

    for version in (1, 2, 3):
        ModelVersion.objects.create(
            name="screens", version=version, mlflow_run_id="bench", source_uri="bench", architecture="bench"
        )
    for index in range(station_count):
        Station.objects.create(slug=f"line-{index}", name=f"Line {index}", automation_level="partial")
    person = User.objects.create_user("ines")
    for start in range(0, count, CHUNK):
        end = min(count, start + CHUNK)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                UNITS_SQL,
                {"stations": station_count, "days": days, "count": count, "start": start, "end": end},
            )
            cursor.execute(
                "SELECT min(id), max(id) FROM inspection_unit WHERE serial >= %s", [f"SN{start:08}"]
            )
            first, last = cursor.fetchone()
            cursor.execute(PREDICTIONS_SQL, {"first": first, "last": last})
            cursor.execute(DECISIONS_SQL, {"first": first, "last": last, "person": person.pk})
        print(f"  {end}/{count} units", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def searches() -> dict[str, str]:
    """Each search a supervisor makes, as the page's query string."""
    from datetime import timedelta

    from django.utils import timezone

    from inspection.supervision.models import Alarm
    from models_registry.models import ModelVersion

    oldest_model = ModelVersion.objects.get(version=1).pk
    day = timezone.now() - timedelta(days=12)
    alarm = Alarm.objects.get()
    return {
        "newest (no filter)": "",
        "one station": "station=line-1",
        "one station, failed": "station=line-1&verdict=fail",
        "decided by a person": "decided_by=human",
        "overrides": "reason=override",
        "audits at one station": "station=line-2&reason=audit",
        "disagreements": "disagreement=yes",
        "pending": "verdict=pending",
        "oldest model version": f"model={oldest_model}",
        "one serial": "serial=SN00421337",
        "serial prefix (10,000 units)": "serial=SN0042",
        "one hour, 12 days ago": (
            f"received_from={day:%Y-%m-%dT%H:%M}&received_to={day + timedelta(hours=1):%Y-%m-%dT%H:%M}"
        ),
        "an alarm's window, failed": f"alarm={alarm.pk}&verdict=fail",
        "list view, disagreements": "view=list&disagreement=yes",
    }


def timed_ms(client, path: str, repeat: int) -> list[float]:
    client.get(path)  # warm-up: the connection, the template, the planner's statistics
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return times


def summary(times: list[float]) -> dict:
    ordered = sorted(times)
    return {
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 1),
    }


def deep_pages(client, query: str, pages: int) -> dict:
    """Follow the "Older" link `pages` times; each request timed."""
    import re

    path = f"/units/?{query}"
    times = []
    for _ in range(pages):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        found = re.search(r'id="older" href="([^"]+)"', response.content.decode())
        if found is None:
            break
        path = "/units/" + found.group(1).replace("&amp;", "&")
    return {"pages": len(times), **summary(times)}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


def export_peak(client, query: str) -> dict:
    """Stream the export of a search and count its rows; the process's resident memory at its
    peak during the export (the kernel's high-water mark, reset first) against before it."""
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    started = time.perf_counter()
    response = client.get(f"/units/export.csv?{query}")
    rows = sum(chunk.count(b"\n") for chunk in response.streaming_content) - 1
    seconds = time.perf_counter() - started
    growth = _status_kib("VmHWM") - before
    return {
        "rows": rows,
        "seconds": round(seconds, 1),
        "rows_per_s": round(rows / seconds),
        "rss_growth_mib": round(growth / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--stations", type=int, default=4)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--skip-export", action="store_true")
    parser.add_argument("--profile", metavar="QUERY", help="profile one page request of this search and stop")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="loupe-bench-units-"))
    backends = Backends(data_dir, embedded=False, name="units_page")
    try:
        if not backends.database_url:
            raise SystemExit("skipped: this benchmark needs the local PostgreSQL")
        django_start({**embedded_environment(data_dir), **backends.environment(), "DJANGO_DEBUG": "0"})
        from datetime import timedelta

        from django.contrib.auth.models import Group, User
        from django.test import Client
        from django.utils import timezone

        from inspection.models import Station
        from inspection.supervision.models import Alarm, AlarmKind

        clock = time.monotonic()
        units_write(args.units, args.stations)
        written_s = time.monotonic() - clock
        print(f"{args.units} units written in {written_s:.0f} s", flush=True)
        alarm = Alarm.objects.create(
            station=Station.objects.get(slug="line-0"),
            kind=AlarmKind.SCORE,
            summary="scores moved",
            last_seen_at=timezone.now(),
        )
        Alarm.objects.filter(pk=alarm.pk).update(
            raised_at=timezone.now() - timedelta(days=3, hours=6),
            cleared_at=timezone.now() - timedelta(days=3),
            status="cleared",
        )
        supervisor = User.objects.create_user("sam")
        supervisor.groups.add(Group.objects.get(name="supervisor"))
        client = Client()
        client.force_login(supervisor)

        if args.profile is not None:
            import cProfile
            import pstats

            client.get(f"/units/?{args.profile}")
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(5):
                client.get(f"/units/?{args.profile}")
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
            export_profile = cProfile.Profile()
            export_profile.enable()
            response = client.get("/units/export.csv?station=line-3")
            sum(1 for _ in response.streaming_content)
            export_profile.disable()
            pstats.Stats(export_profile).sort_stats("tottime").print_stats(15)
            return
        rows = {}
        for name, query in searches().items():
            rows[name] = summary(timed_ms(client, f"/units/?{query}", args.requests))
            print(f"{name:32} {rows[name]}", flush=True)
        floor = rows["newest (no filter)"]["p95_ms"]
        for row in rows.values():
            row["p95_vs_newest_page"] = round(row["p95_ms"] / floor, 2)
        deep = {
            "no filter, 50 pages": deep_pages(client, "", 50),
            "one station failed, 50 pages": deep_pages(client, "station=line-1&verdict=fail", 50),
            "overrides, 20 pages": deep_pages(client, "reason=override", 20),
        }
        for name, row in deep.items():
            print(f"{name:32} {row}", flush=True)
        export = {}
        if not args.skip_export:
            export = {
                "one station, failed": export_peak(client, "station=line-3&verdict=fail"),
                "one station": export_peak(client, "station=line-3"),
                "every unit": export_peak(client, ""),
            }
            for name, row in export.items():
                print(f"export {name:25} {row}", flush=True)
        path = write_result(
            "units_page",
            {
                "backends": backends.describe(),
                "units": args.units,
                "stations": args.stations,
                "requests_per_search": args.requests,
                "written_s": round(written_s),
                "searches": rows,
                "deep_pages": deep,
                "export": export,
                "worst_p95_ms": max(row["p95_ms"] for row in rows.values()),
            },
        )
        print(f"written to {path}")
    finally:
        backends.close()


if __name__ == "__main__":
    main()
