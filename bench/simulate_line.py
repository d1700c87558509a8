"""`python bench/simulate_line.py --station S --rate R --duration T`: a production line posting
generated phone-screen units to the line API over HTTP at a fixed rate, then a summary of the run.
The station, and the device key made when --key is not given, come from this installation's
database: run it with the same settings as the server it posts to."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from models_registry.ml.synthetic.config import (  # noqa: E402
    NEW_DEFECT_CLASSES,
    SyntheticConfig,
    config_as_dict,
)
from models_registry.ml.synthetic.scene import generate_unit  # noqa: E402
from models_registry.ml.types import NO_DEFECT  # noqa: E402

if TYPE_CHECKING:
    from inspection.models import Station

DEFAULT_URL = "http://127.0.0.1:8000"
# The line API's paths (inspection/urls.py's "unit-list" and "health" under config/urls.py's api/v1/)
# and its device-key keyword (inspection.authentication.KEYWORD): tests/bench checks they agree.
UNITS_PATH = "/api/v1/units/"
HEALTH_PATH = "/api/v1/health"
AUTHORIZATION_KEYWORD = "Api-Key"
JPEG_QUALITY = 90
HEALTH_TIMEOUT_SECONDS = 10.0
# Scheduling jitter below this is not the server's doing.
LATE_TOLERANCE_SECONDS = 0.1
DESCRIPTION = (
    "Simulate a production line: post generated phone-screen units to the line API at a fixed "
    "rate for a fixed time, then summarise acceptance, errors, latency and decisions."
)


class SimulationError(Exception):
    """Bad input: an option, the station, the key or the server. `usage` is set for an option."""

    def __init__(self, message: str, *, usage: str = "") -> None:
        super().__init__(message)
        self.usage = usage


@dataclass(frozen=True)
class PooledUnit:
    jpeg: bytes
    label: str


@dataclass(frozen=True)
class PostResult:
    index: int
    status: int | None  # None when no HTTP answer came back
    error: str | None
    latency_ms: float
    late_ms: float  # how long after its due time the post started
    finished: float  # time.monotonic() when the answer came
    body: dict | None
    label: str


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would print and exit: simulate() raises instead
        raise SimulationError(message, usage=self.format_usage())


def parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="python bench/simulate_line.py", description=DESCRIPTION)
    parser.add_argument("--station", required=True, help="the station's slug")
    parser.add_argument("--rate", type=_positive, required=True, help="units per second")
    parser.add_argument("--duration", type=_positive, required=True, help="seconds to run")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the Loupe server (default {DEFAULT_URL})")
    parser.add_argument(
        "--key", help="the station's device key (default: create one for this run, and say so)"
    )
    parser.add_argument(
        "--concurrency", type=_count, default=8, help="sender threads, at most this many posts in flight"
    )
    # The demo's starter data is 640x360: the demo line's camera is the one its model knows.
    parser.add_argument("--width", type=_count, default=640, help="image width (default 640)")
    parser.add_argument("--height", type=_count, default=360, help="image height (default 360)")
    parser.add_argument(
        "--pool", type=_count, default=32, help="distinct images generated before the run (default 32)"
    )
    parser.add_argument("--seed", type=_whole, default=0, help="generator seed (default 0)")
    parser.add_argument("--timeout", type=_positive, default=60.0, help="seconds to wait for one answer")
    # As `manage.py generate_synthetic`'s options change the camera and the line.
    drift = parser.add_argument_group("drift", "the camera and the line changing (default: no drift)")
    drift.add_argument("--defect-rate", type=float, default=0.5, help="share of defective units")
    drift.add_argument("--brightness", type=float, default=1.0, help="lighting multiplier, e.g. 0.6")
    drift.add_argument("--contrast", type=float, default=1.0, help="contrast multiplier")
    drift.add_argument("--blur", type=float, default=0.0, help="extra gaussian blur sigma in pixels")
    drift.add_argument(
        "--color-cast", type=_color_cast, default=(1.0, 1.0, 1.0), help="R,G,B light multipliers"
    )
    drift.add_argument("--new-defect", choices=NEW_DEFECT_CLASSES, help="a defect kind the model never saw")
    drift.add_argument(
        "--new-defect-rate", type=float, default=1.0, help="share of defective units with the new defect"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    return parser


def main(argv: list[str] | None = None, *, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    try:
        simulate(sys.argv[1:] if argv is None else argv, stdout=stdout, stderr=stderr)
    except SimulationError as error:
        stderr.write(f"{error.usage}error: {error}\n")
        return 2
    return 0


def simulate(argv: list[str], *, stdout: TextIO, stderr: TextIO) -> dict:
    """Run the line as `argv` asks and print its summary; return the summary. Bad input raises
    SimulationError before anything is sent; --help prints the help and exits, as argparse does."""
    with contextlib.redirect_stdout(stdout):
        options = parser().parse_args(argv)

    def notice(text: str) -> None:
        """Progress and warnings: on stderr with --json, so stdout is the summary alone."""
        (stderr if options.json else stdout).write(text + "\n")

    try:
        config = SyntheticConfig(
            width=options.width,
            height=options.height,
            defect_rate=options.defect_rate,
            brightness=options.brightness,
            contrast=options.contrast,
            blur=options.blur,
            color_cast=options.color_cast,
            new_defect=options.new_defect,
            new_defect_rate=options.new_defect_rate,
        )
    except ValueError as error:
        raise SimulationError(str(error)) from None
    django_setup()
    station = _station(options.station)
    if options.key:
        _check_key(options.key, station)
    base_url = options.url.rstrip("/")
    _check_server(base_url, notice)
    key = options.key or _new_key(station, notice)

    count = max(1, round(options.rate * options.duration))
    pool = _generate(config, min(options.pool, count), options.seed, notice)
    run = LineRun(
        endpoint=base_url + UNITS_PATH,
        key=key,
        pool=pool,
        rate=options.rate,
        count=count,
        concurrency=options.concurrency,
        timeout=options.timeout,
    )
    notice(
        f"posting {count} units to {run.endpoint} at {options.rate:g}/s for "
        f"{options.duration:g} s with {options.concurrency} senders"
    )
    results, elapsed, interrupted = run.run()
    summary = summarise(
        results,
        station=station.slug,
        url=base_url,
        rate=options.rate,
        duration=options.duration,
        concurrency=options.concurrency,
        elapsed=elapsed,
        interrupted=interrupted,
        image=f"{config.width}x{config.height} JPEG (quality {JPEG_QUALITY}), {len(pool)} distinct",
        drift=_drift(config),
    )
    stdout.write((json.dumps(summary) if options.json else summary_text(summary)) + "\n")
    return summary


def django_setup() -> None:
    """Django on this installation's settings, unless the caller (a test, a shell) has set it up."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()


def _new_key(station: Station, notice) -> str:
    from inspection.services.stations import device_key_create

    name = f"simulate_line {datetime.now(UTC):%Y-%m-%d %H:%M:%S}"
    row, key = device_key_create(station=station, name=name)
    notice(
        f"created device key {row.prefix} ({name!r}) for station {station.slug}; "
        "revoke it in the admin when no longer needed, or pass --key next time"
    )
    return key


def _check_server(base_url: str, notice) -> None:
    url = base_url + HEALTH_PATH
    try:
        response = requests.get(url, timeout=HEALTH_TIMEOUT_SECONDS)
    except requests.RequestException as error:
        raise SimulationError(f"cannot reach Loupe at {base_url}: {error}") from None
    if response.status_code == 503:
        checks = _json_or_none(response) or {}
        failing = [
            f"{name}: {check.get('detail')}"
            for name, check in checks.get("checks", {}).items()
            if not check.get("ok")
        ]
        notice(f"warning: the server says it is not ready ({'; '.join(failing) or response.text[:200]})")
    elif response.status_code != 200:
        raise SimulationError(
            f"{base_url} does not look like Loupe: GET {url} answered {response.status_code}"
        )


def _generate(config: SyntheticConfig, size: int, seed: int, notice) -> list[PooledUnit]:
    """The pool of JPEGs, made before the clock starts: the generator is slower than the API, and
    the rate is to measure the server."""
    notice(f"generating {size} units ({config.width}x{config.height}) before the clock starts")
    pool = []
    for index in range(size):
        unit = generate_unit(np.random.default_rng([seed, index]), config)
        buffer = io.BytesIO()
        unit.image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
        pool.append(PooledUnit(jpeg=buffer.getvalue(), label=unit.label))
    return pool


class LineRun:
    """Posts `count` units, unit i due at start + i / rate, from `concurrency` sender threads.

    The schedule is open-loop, as a line's camera keeps taking pictures whatever the server does:
    when every sender is busy, units start late and the summary says the server did not keep up.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        key: str,
        pool: list[PooledUnit],
        rate: float,
        count: int,
        concurrency: int,
        timeout: float,
    ) -> None:
        self.endpoint = endpoint
        self.key = key
        self.pool = pool
        self.rate = rate
        self.count = count
        self.concurrency = concurrency
        self.timeout = timeout
        self.run_id = uuid.uuid4().hex[:8]
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    def run(self) -> tuple[list[PostResult], float, bool]:
        """The results in posting order, the seconds from the first due time to the last answer,
        and whether Ctrl-C cut the run short (units not yet started are then not sent)."""
        futures: list[Future] = []
        interrupted = False
        executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="line-sender")
        start = time.monotonic()
        try:
            for index in range(self.count):
                due = start + index / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                futures.append(executor.submit(self._post, index, due))
        except KeyboardInterrupt:
            interrupted = True
        finally:
            executor.shutdown(wait=True, cancel_futures=interrupted)
            for session in self._sessions:
                session.close()
        results = [future.result() for future in futures if not future.cancelled()]
        last = max((result.finished for result in results), default=start)
        return results, last - start, interrupted

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["Authorization"] = f"{AUTHORIZATION_KEYWORD} {self.key}"
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _post(self, index: int, due: float) -> PostResult:
        unit = self.pool[index % len(self.pool)]
        serial = f"sim-{self.run_id}-{index:06d}"
        started = time.monotonic()
        late_ms = max(0.0, started - due) * 1000
        status, error, body = None, None, None
        clock = time.perf_counter()
        try:
            response = self._session().post(
                self.endpoint,
                files={"image": (f"{serial}.jpg", unit.jpeg, "image/jpeg")},
                data={
                    "serial": serial,
                    "captured_at": datetime.now(UTC).isoformat(),
                    "metadata": json.dumps({"source": "simulate_line", "generated_label": unit.label}),
                },
                headers={"Idempotency-Key": serial},
                timeout=self.timeout,
            )
        except requests.RequestException as exception:
            error = f"{type(exception).__name__}: {exception}"[:300]
        else:
            status = response.status_code
            body = _json_or_none(response)
            if status != 201:
                error = _error_message(response, body)
                body = None
            elif not isinstance(body, dict):
                error = "the answer is not a JSON object"
        latency_ms = (time.perf_counter() - clock) * 1000
        return PostResult(
            index=index,
            status=status,
            error=error,
            latency_ms=latency_ms,
            late_ms=late_ms,
            finished=time.monotonic(),
            body=body,
            label=unit.label,
        )


def summarise(
    results: list[PostResult],
    *,
    station: str,
    url: str,
    rate: float,
    duration: float,
    concurrency: int,
    elapsed: float,
    interrupted: bool,
    image: str,
    drift: dict,
) -> dict:
    """The run's figures as plain values (the --json output)."""
    accepted = [result for result in results if result.error is None]
    errors = Counter(
        f"{result.status} {result.error}" if result.status is not None else str(result.error)
        for result in results
        if result.error is not None
    )
    latencies = [result.latency_ms for result in accepted]
    late = [result.late_ms for result in results]
    # The run lasts at least its schedule; a slow last answer stretches it.
    seconds = max(duration, elapsed)
    max_late_seconds = max(late, default=0.0) / 1000
    decisions = Counter(result.body.get("decision") or "pending" for result in accepted)
    decided_by = Counter(result.body.get("decided_by") or "undecided" for result in accepted)
    agree = disagree = 0
    for result in accepted:
        if result.body.get("decided_by") == "model" and result.body.get("decision") in ("pass", "fail"):
            truth = "pass" if result.label == NO_DEFECT else "fail"
            if result.body["decision"] == truth:
                agree += 1
            else:
                disagree += 1
    return {
        "station": station,
        "url": url,
        "image": image,
        "drift": drift,
        "rate_asked_per_second": rate,
        "duration_seconds": duration,
        "concurrency": concurrency,
        "interrupted": interrupted,
        "sent": len(results),
        "accepted": len(accepted),
        "error_count": len(results) - len(accepted),
        "errors": dict(errors.most_common()),
        "latency_ms": _percentiles(latencies),
        "start_late_ms": {"p95": _percentile(late, 95), "max": max(late, default=None)},
        "elapsed_seconds": seconds,
        "achieved_rate_per_second": len(accepted) / seconds if seconds > 0 else None,
        "kept_up": max_late_seconds <= max(1.0 / rate, LATE_TOLERANCE_SECONDS),
        "decisions": {verdict: decisions.get(verdict, 0) for verdict in ("pass", "fail", "pending")},
        "decided_by": dict(decided_by.most_common()),
        "model_vs_generated_truth": {"agree": agree, "disagree": disagree},
    }


def summary_text(summary: dict) -> str:
    latency = summary["latency_ms"]
    lines = [
        f"station {summary['station']} at {summary['url']}: {summary['rate_asked_per_second']:g} units/s "
        f"for {summary['duration_seconds']:g} s, {summary['concurrency']} senders, {summary['image']}",
        f"  sent {summary['sent']}, accepted {summary['accepted']}, errors {summary['error_count']}",
    ]
    for message, count in summary["errors"].items():
        lines.append(f"    {count} x {message}")
    if latency["p50"] is not None:
        lines.append(
            "  latency ms (accepted): p50 {p50:.1f}  p95 {p95:.1f}  p99 {p99:.1f}  max {max:.1f}".format(
                **latency
            )
        )
    lines.append(
        f"  achieved rate {summary['achieved_rate_per_second']:.2f} units/s "
        f"(asked {summary['rate_asked_per_second']:g}) over {summary['elapsed_seconds']:.1f} s"
    )
    if not summary["kept_up"]:
        lines.append(
            f"  the server did not keep up: with all {summary['concurrency']} senders busy, posts started "
            f"up to {summary['start_late_ms']['max'] / 1000:.2f} s late (more --concurrency helps only "
            "if the server has capacity to spare)"
        )
    if summary["interrupted"]:
        lines.append("  interrupted: the units not yet started were not sent")
    decisions = summary["decisions"]
    lines.append(
        f"  decisions: pass {decisions['pass']}, fail {decisions['fail']}, pending {decisions['pending']}"
    )
    lines.append(
        "  decided by: " + (", ".join(f"{who} {n}" for who, n in summary["decided_by"].items()) or "-")
    )
    truth = summary["model_vs_generated_truth"]
    if truth["agree"] or truth["disagree"]:
        lines.append(
            f"  the model's verdicts vs the generated truth: {truth['agree']} agree, "
            f"{truth['disagree']} disagree"
        )
    return "\n".join(lines)


def _station(slug: str) -> Station:
    from inspection.models import Station
    from inspection.selectors import station_get

    try:
        return station_get(slug=slug)
    except Station.DoesNotExist:
        known = ", ".join(Station.objects.order_by("slug").values_list("slug", flat=True)[:20])
        raise SimulationError(
            f"no station {slug!r} in this database (stations: {known or 'none yet'})"
        ) from None


def _check_key(key: str, station: Station) -> None:
    from rest_framework.exceptions import AuthenticationFailed

    from inspection.authentication import device_from_key

    try:
        device = device_from_key(key)
    except AuthenticationFailed as error:
        raise SimulationError(f"--key: {error.detail}") from None
    if device.station.pk != station.pk:
        raise SimulationError(f"--key belongs to station {device.station.slug}, not {station.slug}")


def _drift(config: SyntheticConfig) -> dict:
    drift = {key: value for key, value in config_as_dict(config).items() if key not in ("width", "height")}
    if not config.new_defect:
        drift["new_defect_rate"] = None
    return drift


def _json_or_none(response: requests.Response):
    try:
        return response.json()
    except ValueError:
        return None


def _error_message(response: requests.Response, body) -> str:
    """The server's reason in one line: DRF's `detail`, or the first field error."""
    if isinstance(body, dict):
        if "detail" in body:
            return str(body["detail"])[:200]
        for field, messages in body.items():
            message = messages[0] if isinstance(messages, list) and messages else messages
            return f"{field}: {message}"[:200]
    return (response.reason or response.text.strip())[:200]


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _percentiles(values: list[float]) -> dict:
    return {
        "p50": _percentile(values, 50),
        "p95": _percentile(values, 95),
        "p99": _percentile(values, 99),
        "max": max(values, default=None),
    }


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _whole(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or positive, got {text!r}")
    return value


def _count(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def _color_cast(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"must be three numbers R,G,B (e.g. 1.15,1,0.85), got {text!r}")
    return values  # type: ignore[return-value]


if __name__ == "__main__":
    sys.exit(main())
