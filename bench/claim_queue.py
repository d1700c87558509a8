"""Claiming the next unit of the human queue with a million units in PostgreSQL.

    python bench/claim_queue.py [--units 1000000] [--claims 500] [--threads 1,4] [--pending-share 0.02]

A throwaway PostgreSQL database (dropped afterwards, also on failure) is migrated and filled with
one `INSERT ... SELECT FROM generate_series`: `--units` units over four stations, received over
the last 30 days in arrival order, a `--pending-share` of them still pending (the rest decided).
Only the unit table is filled: the claim reads nothing else. Then inspectors work one station's
queue as a shift does, through the real services: `unit_claim_next`, then either
`decision_record` or, for one claim in five, `unit_claim_release` (a skip, which that inspector
excludes from their later claims). Only the `unit_claim_next` call is timed. Each thread count is
a phase of `--claims` claims shared among that many threads, each thread its own inspector(s)
and database connection; a claim's hold (from its return to the start of its decision or
release) must never overlap another hold of the same unit, and no decision may turn out to be
an override. The claim's SQL, captured from the service, is shown with EXPLAIN ANALYZE before
and after the phases. PostgreSQL is required: the figure is about its row locks and indexes.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import LOCAL_POSTGRES, Backends, embedded_environment, goal_check, write_result  # noqa: E402
from predictor_speed import percentile  # noqa: E402

# (slug, automation level, why its pending units wait for a person)
STATIONS = (
    ("bench-assisted", "assisted", "assisted"),
    ("bench-partial", "partial", "deferred"),
    ("bench-full", "full", "audit"),
    ("bench-human", "human", "human"),
)
STATION_UNDER_TEST = "bench-assisted"
DEFECT_CLASSES = ["scratch", "dent", "stain"]
SPREAD = timedelta(days=30)
SKIP_SHARE = 0.2
FAIL_SHARE = 0.1
GOAL_P95_MS = 20.0
LOAD_SEED = 0.42


@dataclass(frozen=True)
class Claim:
    thread: int
    inspector: str
    unit_id: int | None
    claim_ms: float
    held_from: float
    held_until: float
    outcome: str  # "decided", "released" or "empty"


def stations_and_inspectors(inspector_count: int) -> tuple[dict, list]:
    from django.contrib.auth import get_user_model

    from inspection.services.stations import station_create

    stations = {
        slug: station_create(slug=slug, level=level, defect_classes=DEFECT_CLASSES)
        for slug, level, _ in STATIONS
    }
    inspectors = [
        get_user_model().objects.create_user(username=f"inspector-{number}")
        for number in range(1, inspector_count + 1)
    ]
    return stations, inspectors


def units_load(*, stations: dict, units: int, pending_share: float) -> dict:
    """`units` units in one INSERT ... SELECT, ids in arrival order; then ANALYZE."""
    from django.db import connection
    from django.utils import timezone

    slugs = [slug for slug, _, _ in STATIONS]
    levels = [level for _, level, _ in STATIONS]
    reasons = [reason for _, _, reason in STATIONS]
    start = timezone.now() - SPREAD
    sql = """
        WITH numbered AS (
            SELECT n,
                   1 + mod(n, %(station_count)s) AS station_index,
                   %(start)s::timestamptz + (n - 1) * %(step)s::interval AS received_at,
                   random() < %(pending_share)s AS pending
            FROM generate_series(1, %(units)s) AS n
        )
        INSERT INTO inspection_unit (
            station_id, serial, image, image_sha256, image_width, image_height, image_format,
            source_filename, captured_at, received_at, metadata, status, automation_level,
            queue_reason, blind, routing, first_response
        )
        SELECT (%(station_ids)s::bigint[])[station_index],
               'SN' || lpad(n::text, 10, '0'),
               'units/' || (%(slugs)s::text[])[station_index] || '/'
                   || to_char(received_at AT TIME ZONE 'UTC', 'YYYY/MM/DD') || '/unit-' || n || '.jpg',
               encode(sha256(n::text::bytea), 'hex'),
               1280, 720, 'JPEG',
               'unit-' || n || '.jpg',
               received_at - interval '200 milliseconds',
               received_at,
               '{}'::jsonb,
               CASE WHEN pending THEN 'pending' ELSE 'decided' END,
               (%(levels)s::text[])[station_index],
               CASE WHEN pending THEN (%(reasons)s::text[])[station_index] ELSE '' END,
               (%(levels)s::text[])[station_index] = 'human',
               '{}'::jsonb,
               '{}'::jsonb
        FROM numbered
        ORDER BY n
    """
    parameters = {
        "station_count": len(slugs),
        "start": start,
        "step": SPREAD / units,
        "pending_share": pending_share,
        "units": units,
        "station_ids": [stations[slug].pk for slug in slugs],
        "slugs": slugs,
        "levels": levels,
        "reasons": reasons,
    }
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [LOAD_SEED])
        started = time.perf_counter()
        cursor.execute(sql, parameters)
        load_seconds = time.perf_counter() - started
        started = time.perf_counter()
        cursor.execute("ANALYZE inspection_unit")
        analyze_seconds = time.perf_counter() - started
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'pending'), "
            "count(*) FILTER (WHERE status = 'pending' AND station_id = %s) FROM inspection_unit",
            [stations[STATION_UNDER_TEST].pk],
        )
        total, pending, pending_under_test = cursor.fetchone()
        sizes = _relation_sizes(cursor)
    return {
        "units": total,
        "pending": pending,
        "pending_at_station_under_test": pending_under_test,
        "load_seconds": load_seconds,
        "units_per_second": total / load_seconds,
        "analyze_seconds": analyze_seconds,
        "sizes_mb": sizes,
    }


def _relation_sizes(cursor) -> dict[str, float]:
    cursor.execute(
        """
        SELECT relname, pg_relation_size(oid) FROM pg_class
        WHERE relname = 'inspection_unit'
           OR oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'inspection_unit'::regclass)
        ORDER BY relname
        """
    )
    return {name: round(size / 2**20, 2) for name, size in cursor.fetchall()}


def claim_plan(*, station, inspector) -> tuple[str, str]:
    """The claim's SELECT as the service sends it, and its EXPLAIN (ANALYZE, BUFFERS).

    The claim that captured the SQL is given back; the EXPLAIN's own row lock ends with its
    transaction."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from inspection.services.queue import unit_claim_next, unit_claim_release

    with CaptureQueriesContext(connection) as captured:
        unit = unit_claim_next(station=station, user=inspector)
    if unit is None:
        raise SystemExit("the queue of the station under test is empty before the shift")
    unit_claim_release(unit=unit, user=inspector)
    sql = next(query["sql"] for query in captured.captured_queries if "FOR UPDATE" in query["sql"])
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    return sql, plan


def shift_phase(*, station, inspectors: list, threads: int, claims: int, seed: int) -> dict:
    """`claims` claims shared among `threads` threads started together; thread k works as
    inspectors k, k + threads, ... in turn."""
    barrier = threading.Barrier(threads)
    results: list[list[Claim]] = [[] for _ in range(threads)]
    failures: list[BaseException] = []
    shares = [claims // threads + (1 if k < claims % threads else 0) for k in range(threads)]

    def work(number: int) -> None:
        try:
            results[number] = _shift(
                station=station,
                inspectors=inspectors[number::threads],
                claims=shares[number],
                thread=number,
                rng=random.Random(seed * 1000 + number),
                barrier=barrier,
            )
        except BaseException as error:  # reported after the join, the phase fails
            failures.append(error)
            barrier.abort()

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(number,)) for number in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - started
    if failures:
        raise failures[0]
    records = [claim for thread_claims in results for claim in thread_claims]
    latencies = [claim.claim_ms for claim in records]
    outcomes = {
        name: sum(claim.outcome == name for claim in records) for name in ("decided", "released", "empty")
    }
    return {
        "threads": threads,
        "inspectors": len(inspectors),
        "claims": len(records),
        **outcomes,
        "seconds": seconds,
        "claims_per_second": len(records) / seconds,
        "claim_ms": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
            "max": max(latencies),
            "mean": sum(latencies) / len(latencies),
        },
        "double_claims": _overlapping_holds(records),
    }


def _shift(
    *, station, inspectors: list, claims: int, thread: int, rng: random.Random, barrier
) -> list[Claim]:
    from django.db import connection

    from inspection.enums import Verdict
    from inspection.services.decisions import decision_record
    from inspection.services.queue import unit_claim_next, unit_claim_release

    skipped: dict[int, list[int]] = {inspector.pk: [] for inspector in inspectors}
    records = []
    try:
        connection.ensure_connection()
        barrier.wait()
        for index in range(claims):
            inspector = inspectors[index % len(inspectors)]
            started = time.perf_counter()
            unit = unit_claim_next(station=station, user=inspector, exclude=skipped[inspector.pk])
            held_from = time.perf_counter()
            claim_ms = (held_from - started) * 1000
            if unit is None:
                records.append(
                    Claim(thread, inspector.username, None, claim_ms, held_from, held_from, "empty")
                )
                continue
            unit.station = station
            if rng.random() < SKIP_SHARE:
                held_until = time.perf_counter()
                if not unit_claim_release(unit=unit, user=inspector):
                    raise RuntimeError(
                        f"{inspector.username} could not release unit {unit.pk} it had claimed"
                    )
                skipped[inspector.pk].append(unit.pk)
                outcome = "released"
            else:
                failed = rng.random() < FAIL_SHARE
                held_until = time.perf_counter()
                decision_record(
                    unit=unit,
                    user=inspector,
                    verdict=Verdict.FAIL if failed else Verdict.PASS,
                    defect_classes=[rng.choice(DEFECT_CLASSES)] if failed else [],
                )
                outcome = "decided"
            records.append(
                Claim(thread, inspector.username, unit.pk, claim_ms, held_from, held_until, outcome)
            )
    finally:
        connection.close()
    return records


def _overlapping_holds(records: list[Claim]) -> list[dict]:
    """Pairs of claims that held the same unit at the same time (there must be none)."""
    holds: dict[int, list[Claim]] = {}
    for claim in records:
        if claim.unit_id is not None:
            holds.setdefault(claim.unit_id, []).append(claim)
    overlaps = []
    for unit_claims in holds.values():
        unit_claims.sort(key=lambda claim: claim.held_from)
        for earlier, later in pairwise(unit_claims):
            if later.held_from < earlier.held_until:
                overlaps.append({"earlier": asdict(earlier), "later": asdict(later)})
    return overlaps


def queue_consistency(*, decisions_made: int) -> dict:
    """What the database says after the phases: every decision a first one, no claim left."""
    from inspection.enums import DecisionReason
    from inspection.models import DecisionEvent, Unit

    decisions = DecisionEvent.objects.count()
    overrides = DecisionEvent.objects.filter(reason=DecisionReason.OVERRIDE).count()
    claims_left = Unit.objects.filter(claimed_by__isnull=False).count()
    return {
        "decisions_made": decisions_made,
        "decision_events": decisions,
        "overrides": overrides,
        "claims_left": claims_left,
        "consistent": decisions == decisions_made and overrides == 0 and claims_left == 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--claims", type=int, default=500, help="claims per thread count")
    parser.add_argument("--threads", default="1,4", help="thread counts, comma-separated")
    parser.add_argument("--pending-share", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    thread_counts = [int(part) for part in args.threads.split(",") if part.strip()]
    if not thread_counts or min(thread_counts) < 1:
        parser.error("--threads needs positive thread counts")

    data_dir = Path(tempfile.mkdtemp(prefix="loupe-bench-claim-"))
    try:
        database = Backends(data_dir, embedded=False, name="claim_queue")
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    django_ready = False
    try:
        if not database.database_url:
            raise SystemExit(
                f"refused: PostgreSQL does not answer at {LOCAL_POSTGRES} (this benchmark measures "
                "PostgreSQL's row locks and partial index; SQLite would say nothing about them)"
            )
        print(f"database: {database.describe()['database']}", flush=True)
        os.environ.update(
            {
                **embedded_environment(data_dir),
                **database.environment(),
                "DJANGO_SETTINGS_MODULE": "config.settings",
            }
        )
        import django

        django.setup()
        django_ready = True
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            server_version = cursor.fetchone()[0]
        stations, inspectors = stations_and_inspectors(max(4, *thread_counts))
        loaded = units_load(stations=stations, units=args.units, pending_share=args.pending_share)
        print(
            f"loaded {loaded['units']:,} units ({loaded['pending']:,} pending, "
            f"{loaded['pending_at_station_under_test']:,} at {STATION_UNDER_TEST}) in "
            f"{loaded['load_seconds']:.1f} s ({loaded['units_per_second']:,.0f} units/s); "
            f"ANALYZE {loaded['analyze_seconds']:.1f} s",
            flush=True,
        )
        needed = args.claims * len(thread_counts) + 1
        if loaded["pending_at_station_under_test"] < needed:
            raise SystemExit(
                f"only {loaded['pending_at_station_under_test']} pending units at {STATION_UNDER_TEST}, "
                f"fewer than the {needed} the shift may decide: raise --units or --pending-share"
            )

        station = stations[STATION_UNDER_TEST]
        claim_sql, plan_before = claim_plan(station=station, inspector=inspectors[0])
        print(
            f"\nclaim SQL (from unit_claim_next):\n{claim_sql}\n\nEXPLAIN ANALYZE:\n{plan_before}\n",
            flush=True,
        )

        phases = []
        for number, threads in enumerate(thread_counts):
            phase = shift_phase(
                station=station,
                inspectors=inspectors,
                threads=threads,
                claims=args.claims,
                seed=args.seed + number,
            )
            phases.append(phase)
            latency = phase["claim_ms"]
            print(
                f"{threads} thread(s): {phase['claims']} claims ({phase['decided']} decided, "
                f"{phase['released']} released, {phase['empty']} empty), p50 {latency['p50']:.2f} ms, "
                f"p95 {latency['p95']:.2f} ms, double claims {len(phase['double_claims'])}",
                flush=True,
            )
        _, plan_after = claim_plan(station=station, inspector=inspectors[0])
        consistency = queue_consistency(decisions_made=sum(phase["decided"] for phase in phases))
        with connection.cursor() as cursor:
            sizes_after = _relation_sizes(cursor)

        from inspection.events import station_events_flush

        station_events_flush()
        result = report(
            args,
            server_version=server_version,
            loaded=loaded,
            phases=phases,
            consistency=consistency,
            claim_sql=claim_sql,
            plan_before=plan_before,
            plan_after=plan_after,
            sizes_after=sizes_after,
        )
    finally:
        if django_ready:
            from django.db import connections

            connections.close_all()
            connections["default"].close_pool()
        database.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    path = write_result("claim_queue", result)
    print(f"written to {path}")
    if not consistency["consistent"] or any(phase["double_claims"] for phase in phases):
        raise SystemExit("the queue handed a unit to two inspectors at once, or lost track of a claim")


def report(
    args,
    *,
    server_version: str,
    loaded: dict,
    phases: list[dict],
    consistency: dict,
    claim_sql: str,
    plan_before: str,
    plan_after: str,
    sizes_after: dict,
) -> dict:
    print(
        "\nplan after the shift (its decisions and releases leave dead entries at the head of the index):\n"
        f"{plan_after}\n"
    )
    print(
        f"units {loaded['units']:,} ({loaded['pending']:,} pending), load {loaded['load_seconds']:.1f} s, "
        f"ANALYZE {loaded['analyze_seconds']:.1f} s; PostgreSQL {server_version}"
    )
    print()
    print("| threads | claims | decided | released | empty | p50 ms | p95 ms | p99 ms | max ms | claims/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for phase in phases:
        latency = phase["claim_ms"]
        print(
            f"| {phase['threads']} | {phase['claims']} | {phase['decided']} | {phase['released']} | "
            f"{phase['empty']} | {latency['p50']:.2f} | {latency['p95']:.2f} | {latency['p99']:.2f} | "
            f"{latency['max']:.2f} | {phase['claims_per_second']:.1f} |"
        )
    goals = {
        f"claim_p95_ms_{phase['threads']}_threads": goal_check(
            phase["claim_ms"]["p95"], GOAL_P95_MS, phase["claim_ms"]["p95"] <= GOAL_P95_MS
        )
        for phase in phases
    }
    double_claims = sum(len(phase["double_claims"]) for phase in phases)
    goals["double_claims"] = goal_check(double_claims, 0, double_claims == 0)
    print()
    for name, goal in goals.items():
        print(f"{name}: {goal['measured']:.3g} (goal {goal['goal']}) {'met' if goal['met'] else 'NOT met'}")
    print(
        f"database after the shift: {consistency['decision_events']} decision events for "
        f"{consistency['decisions_made']} decisions made, {consistency['overrides']} overrides, "
        f"{consistency['claims_left']} claims left"
    )
    return {
        "database": f"PostgreSQL {server_version} (throwaway database, dropped after the run)",
        "cpu_count": os.cpu_count(),
        "units": args.units,
        "pending_share": args.pending_share,
        "stations": [slug for slug, _, _ in STATIONS],
        "station_under_test": STATION_UNDER_TEST,
        "skip_share": SKIP_SHARE,
        "load": loaded,
        "sizes_after_mb": sizes_after,
        "claim_sql": claim_sql,
        "plan_before": plan_before,
        "plan_after": plan_after,
        "phases": phases,
        "consistency": consistency,
        "goals": goals,
    }


if __name__ == "__main__":
    main()
