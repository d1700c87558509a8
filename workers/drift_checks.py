"""Drift checks: windows of live units compared with the champion's reference, off the request path
(a Celery task per station, queued by a beat sweep), and the live escape-rate check queued by each
partial automation audit verdict. Windows, tests and alarms: docs/operations.md."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Max

from inspection.background import Task, task_enqueue
from inspection.enums import AutomationLevel
from inspection.models import Prediction, Station, Unit
from inspection.supervision.models import DriftCheck, DriftSettings
from inspection.supervision.selectors import blind_judged
from inspection.supervision.services import (
    AlarmFinding,
    alarm_action_add,
    alarms_raise,
    escape_rate_check,
)
from labeling.snapshots import EmptySnapshot
from models_registry.ml.drift import (
    AGREEMENT,
    EMBEDDING,
    INPUT,
    SCORE,
    DriftTest,
    Window,
    summary_statistics,
    window_tests,
)
from models_registry.models import ModelVersion
from models_registry.services import model_reference_get
from workers.models import TrainingTrigger
from workers.retraining import training_job_request

logger = logging.getLogger(__name__)

# A backlog (a worker was down) is worked off a few windows per task run.
MAX_WINDOWS_PER_RUN = 10
MAX_SCAN_WINDOWS = 10
MIN_DISTINCT_UNITS = 20


def _last_checked_unit(station: Station, model_version: ModelVersion) -> int:
    last = DriftCheck.objects.filter(station=station, model_version=model_version).aggregate(
        Max("last_unit_id")
    )
    return last["last_unit_id__max"] or 0


def _window_predictions(
    station: Station, model_version: ModelVersion, after_unit_id: int
) -> tuple[list[dict], int] | None:
    """The next window after `after_unit_id`: `drift_window` predictions of distinct photographs,
    and the last unit it covers; None while too few have arrived.

    A photograph posted again (a retry without an idempotency key, a simulator's image pool)
    counts once: repeated values would make the tests overconfident. A stream of mostly repeats is
    cut after `MAX_SCAN_WINDOWS` windows' worth of units and checked on the distinct ones it holds,
    when there are at least `MIN_DISTINCT_UNITS`."""
    size = DriftSettings.of(station).drift_window
    limit = size * MAX_SCAN_WINDOWS
    rows = (
        Prediction.objects.filter(
            model_version=model_version, unit__station=station, unit_id__gt=after_unit_id
        )
        .order_by("unit_id")
        .values("unit_id", "confidence", "embedding", "unit__image_sha256")[:limit]
    )
    window: list[dict] = []
    seen: set[str] = set()
    scanned = last = 0
    for row in rows.iterator(chunk_size=500):
        scanned += 1
        last = row["unit_id"]
        if row["unit__image_sha256"] in seen:
            continue
        seen.add(row["unit__image_sha256"])
        window.append(row)
        if len(window) == size:
            return window, last
    if scanned == limit and len(window) >= MIN_DISTINCT_UNITS:
        return window, last
    return None


def drift_checks_due() -> list[Station]:
    """Stations whose champion has predicted a full window of units since its last check."""
    due = []
    stations = Station.objects.exclude(automation_level=AutomationLevel.HUMAN).exclude(champion=None)
    for station in stations.select_related("champion", "driftsettings"):
        after = _last_checked_unit(station, station.champion)
        window = DriftSettings.of(station).drift_window
        waiting = Prediction.objects.filter(
            model_version=station.champion, unit__station=station, unit_id__gt=after
        )[:window].count()
        if waiting >= window:
            due.append(station)
    return due


def drift_checks_sweep() -> list[int]:
    """Beat: queue a check of every station with a full window waiting; the ids queued."""
    queued = []
    for station in drift_checks_due():
        if task_enqueue(Task.STATION_DRIFT_CHECK, station.pk, what=f"drift check of {station.slug}"):
            queued.append(station.pk)
    return queued


def _agreement(station: Station, model_version: ModelVersion, up_to_unit_id: int) -> tuple[int, int]:
    """(agreed, judged) over the latest `drift_window` blind units (shadow, audit) the model
    decided for and a person judged, up to the window's last unit: the dashboard's agreement
    (`blind_judged`: the person's latest verdict against the model's)."""
    units = Unit.objects.filter(station=station, deciding_model=model_version, pk__lte=up_to_unit_id)
    verdicts = list(
        blind_judged(units)
        .order_by("-pk")
        .values_list("human_verdict", "model_verdict")[: DriftSettings.of(station).drift_window]
    )
    return sum(human == model for human, model in verdicts), len(verdicts)


def _findings(tests: Sequence[DriftTest]) -> list[AlarmFinding]:
    by_kind: dict[str, list[DriftTest]] = defaultdict(list)
    for test in tests:
        if test.shifted:
            by_kind[test.kind].append(test)
    findings = []
    for kind, shifted in by_kind.items():
        shifted.sort(key=lambda t: t.adjusted_p_value)
        strongest = shifted[0]
        detail = {"tests": [t.as_dict() for t in shifted]}
        findings.append(AlarmFinding(kind=kind, summary=_summary(kind, shifted, strongest), detail=detail))
    return findings


def _summary(kind: str, shifted: list[DriftTest], strongest: DriftTest) -> str:
    p = f"p = {strongest.adjusted_p_value:.2g} after Holm"
    detail = strongest.detail
    if kind == INPUT:
        names = ", ".join(t.name for t in shifted)
        return (
            f"{names} shifted: {strongest.name} averages {detail['live_mean']:.3g} "
            f"vs {detail['reference_mean']:.3g} on validation (KS D = {strongest.statistic:.2f}, {p})"
        )
    if kind == EMBEDDING:
        return f"units unlike the validation data: MMD² = {strongest.statistic:.3g} ({p})"
    if kind == SCORE:
        return (
            f"the model is less sure: mean confidence {detail['live_mean']:.3f} vs "
            f"{detail['reference_mean']:.3f} on validation (KS D = {strongest.statistic:.2f}, {p})"
        )
    if kind == AGREEMENT:
        return (
            f"blind human verdicts agree with the model on {strongest.statistic:.0%} of "
            f"{detail['judged']} units vs {detail['reference_rate']:.0%} of validation units ({p})"
        )
    return f"{kind}: {strongest.name} shifted ({p})"


def station_drift_check(*, station: Station) -> list[DriftCheck]:
    """Check every full window waiting (up to `MAX_WINDOWS_PER_RUN`); the checks made. Safe to run
    twice at once: a window is checked once (unique constraint), the other run moves on."""
    station = Station.objects.select_related("champion").get(pk=station.pk)
    champion = station.champion
    if champion is None or station.automation_level == AutomationLevel.HUMAN:
        return []
    reference, _ = model_reference_get(model_version=champion)
    if reference is None:
        logger.warning("%s has no drift reference (a bundle made before monitoring): not checked", champion)
        return []
    checks = []
    for _ in range(MAX_WINDOWS_PER_RUN):
        found = _window_predictions(station, champion, _last_checked_unit(station, champion))
        if found is None:
            break
        rows, last = found
        check = _check_window(station, champion, reference, rows, last)
        if check is None:
            continue  # another worker checked this window
        checks.append(check)
    return checks


def _check_window(
    station: Station, champion: ModelVersion, reference, rows: list[dict], last: int
) -> DriftCheck | None:
    started = time.perf_counter()
    statistics: dict[str, list[float]] = defaultdict(list)
    embeddings, confidence = [], []
    for row in rows:
        summary = row["embedding"]
        for name, value in summary_statistics(summary).items():
            statistics[name].append(value)
        embeddings.append(summary["vector"])
        confidence.append(row["confidence"])
    first = rows[0]["unit_id"]
    agreed, judged = _agreement(station, champion, last)
    window = Window(
        statistics=statistics,
        embeddings=np.asarray(embeddings, float),
        confidence=confidence,
        agreed=agreed,
        judged=judged,
    )
    drift = DriftSettings.of(station)
    tests = window_tests(reference, window, alpha=drift.drift_significance, seed=last)
    # The check and the alarms it raises commit together: a worker dying in between must not leave
    # a shifted window that no later run checks again and no alarm tells of.
    with transaction.atomic():
        try:
            with transaction.atomic():
                check = DriftCheck.objects.create(
                    station=station,
                    model_version=champion,
                    first_unit_id=first,
                    last_unit_id=last,
                    window_size=len(rows),
                    significance=drift.drift_significance,
                    tests=[t.as_dict() for t in tests],
                    shifted=any(t.shifted for t in tests),
                    seconds=time.perf_counter() - started,
                )
        except IntegrityError:
            return None  # another worker checked this window
        outcome = None
        if check.shifted:
            outcome = alarms_raise(
                station=station, findings=_findings(tests), model_version=champion, drift_check=check
            )
    if outcome is not None and outcome.raised and drift.alarm_retrain:
        _retrain(station, outcome.raised)
    return check


def station_escape_rate_check(*, station: Station) -> list[int]:
    """The live escape-rate check after an audit verdict (`escape_rate_check`), retraining on a
    new alarm like a drift alarm when the station says so; the ids of the alarms raised."""
    outcome = escape_rate_check(station=station)
    if outcome.raised and DriftSettings.of(station).alarm_retrain:
        _retrain(station, outcome.raised)
    return [alarm.pk for alarm in outcome.raised]


def _retrain(station: Station, alarms: list) -> None:
    try:
        job, created = training_job_request(station=station, trigger=TrainingTrigger.DRIFT)
    except EmptySnapshot:
        action = "retraining not started: the station has no labelled units yet"
    else:
        action = f"training job {job.pk} queued" if created else f"training job {job.pk} already {job.status}"
    for alarm in alarms:
        alarm_action_add(alarm=alarm, action=action)
