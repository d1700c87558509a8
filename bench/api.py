"""The line API under load: camera frames (1280x720 JPEGs by default) posted through the real
ASGI server.

    python bench/api.py [--seconds 20] [--clients 1,4,16] [--warmup 3] [--bundle DIR]
                        [--size 1920x1080] [--geometry aspect|tiles]
                        [--against-bare [--bare-seconds 8]] [--busy-training] [--embedded]

The web process is started as `make run` starts it (config.processes: the command line and the
process/thread layout for this machine, which LOUPE_WEB_PROCESSES, LOUPE_LINE_THREADS and
LOUPE_INFERENCE_THREADS override), in a subprocess, on the local PostgreSQL and Redis when
they answer (a throwaway database and a spare Redis database, both removed afterwards), else on
the embedded SQLite and Redis; the run says which. One station at full automation (no audits)
has the starter model `make run` serves as its champion, so every unit is predicted, decided and
stored on the request path. For each number of clients, each client posts back to back over its
own connection for a fixed time, after a warm-up; at the end the units in the database are
counted against the 201 answers. The predictor alone is measured in the same run, on the same
images, while the server idles: its pipeline time one image at a time (decode + preprocess +
forward + post-processing), and its best throughput with 1, 2 or 4 threads calling it.

`--geometry tiles` serves a model of the native-resolution geometry (320 px tiles at the camera's
own pixels, bench/training.py) instead of the starter model. `--busy-training` keeps a training
running (bench/training.py --busy, torch on every core) through the measured phases. `--seconds 0`
leaves out the plain phases (only the comparison with the bare server runs).

The first run trains the starter model (a few minutes, as predictor_speed.py does) and generates
the 64 units; both are kept in bench/out for later runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import itertools
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import (  # noqa: E402
    OUT,
    Backends,
    django_start,
    embedded_environment,
    goal_check,
    log_tail,
    process_start,
    process_stop,
    write_result,
)
from predictor_speed import percentile, starter_bundle  # noqa: E402
from training import tiles_bundle  # noqa: E402

from deploy.topology import free_port  # noqa: E402

STATION = "bench-line"
MODEL_NAME = "loupe-demo"
IMAGE_COUNT = 64
JPEG_QUALITY = 90
SERVER_START_TIMEOUT_SECONDS = 180.0
REQUEST_TIMEOUT_SECONDS = 60.0
PREDICTOR_THREADS = (1, 2, 4)
GOAL_ONE_CLIENT_P50_OVER_PIPELINE = 1.3
GOAL_SIXTEEN_CLIENTS_OVER_PREDICTOR = 0.8


@dataclass(frozen=True)
class Answer:
    status: int | None
    error: str | None
    latency_ms: float
    finished: float
    unit_id: int | None
    decided: bool = False


def unit_images(count: int, seed: int, width: int = 1280, height: int = 720) -> list[bytes]:
    """`count` distinct generated units as JPEGs, made once and kept in bench/out."""
    from models_registry.ml.synthetic.config import SyntheticConfig
    from models_registry.ml.synthetic.scene import generate_unit

    folder = OUT / f"api-units-{width}x{height}-q{JPEG_QUALITY}-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    config = SyntheticConfig(width=width, height=height)
    images = []
    for index in range(count):
        path = folder / f"unit_{index:03d}.jpg"
        if not path.exists():
            buffer = io.BytesIO()
            unit = generate_unit(np.random.default_rng([seed, index]), config)
            unit.image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
            path.write_bytes(buffer.getvalue())
        images.append(path.read_bytes())
    return images


def station_prepare(bundle: Path, data_dir: Path) -> tuple[object, str]:
    """The starter model registered as a version (its bundle already in the model cache), a
    station at full automation with no audits, and a device key: (station, key)."""
    from inspection.enums import AutomationLevel
    from inspection.services.stations import device_key_create, station_create
    from models_registry.ml.serving.bundle import read_config
    from models_registry.models import ModelVersion

    cached = data_dir / "model-cache" / MODEL_NAME / "1"
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.symlink_to(bundle.resolve(), target_is_directory=True)
    config = read_config(bundle)
    version = ModelVersion.objects.create(
        name=MODEL_NAME,
        version=1,
        mlflow_run_id="bench",
        source_uri=str(bundle),
        dataset_name="demo-screens",
        architecture=f"defectnet-{config.network.backbone}-{config.geometry.slug}",
        geometry=config.geometry.as_dict(),
        classes=list(config.classes),
        metrics=config.metrics,
        risk_control=config.risk_control,
    )
    station = station_create(slug=STATION, level=AutomationLevel.FULL, champion=version, audit_share=0.0)
    _, key = device_key_create(station=station, name="bench/api.py")
    return station, key


class Server:
    """The web process as `make run` starts it (config.processes), in its own process group,
    without its access log."""

    def __init__(self, environment: dict[str, str], *, data_dir: Path, log_path: Path) -> None:
        from config.processes import ProcessOptions, process_command

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = process_command("web", ProcessOptions(data_dir=data_dir, port=self.port))
        command += ["--no-access-log", "--log-level", "warning"]
        self.process = process_start(command, environment=environment, log_path=log_path)

    def wait_until_healthy(self) -> float:
        """Seconds until /api/v1/health says ok (which also loads the model in that worker)."""
        started = time.monotonic()
        while time.monotonic() - started < SERVER_START_TIMEOUT_SECONDS:
            if self.process.poll() is not None:
                raise SystemExit(f"uvicorn exited with status {self.process.returncode}:\n{self.log_tail()}")
            try:
                response = requests.get(f"{self.url}/api/v1/health", timeout=30)
            except requests.RequestException:
                time.sleep(0.5)
                continue
            if response.status_code == 200:
                return time.monotonic() - started
            time.sleep(0.5)
        raise SystemExit(
            f"uvicorn was not healthy within {SERVER_START_TIMEOUT_SECONDS:.0f} s:\n{self.log_tail()}"
        )

    def log_tail(self) -> str:
        return log_tail(self.log_path)

    def stop(self) -> None:
        process_stop(self.process, timeout=15)


def busy_training_start(log_path: Path):
    """bench/training.py --busy in its own process group, once it has begun to train."""
    command = [sys.executable, str(Path(__file__).with_name("training.py")), "--busy"]
    process = process_start(command, environment=dict(os.environ), log_path=log_path)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
    while "training" not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"bench/training.py --busy did not start:\n{log_tail(log_path)}")
        time.sleep(0.5)
    time.sleep(3)  # into its first steps
    return process


def predictor_alone(bundle: Path, images: list[bytes], *, iterations: int, seconds: float) -> dict:
    """The predictor as the server loads it, on the same images: sequential pipeline time, then
    throughput with 1, 2 and 4 threads calling `predict` at once."""
    from django.conf import settings

    from models_registry.ml.serving.predictor import load_predictor

    predictor = load_predictor(bundle, threads=settings.LOUPE_INFERENCE_THREADS)
    for image in images[:10]:
        predictor.predict(image)
    totals, phases = [], {"preprocess": [], "forward": [], "postprocess": []}
    for index in range(iterations):
        timings = predictor.predict(images[index % len(images)]).timings_ms
        totals.append(timings["total"])
        for phase, values in phases.items():
            values.append(timings[phase])

    throughput = {
        threads: _predictor_throughput(predictor, images, threads=threads, seconds=seconds)
        for threads in PREDICTOR_THREADS
    }
    best = max(throughput, key=throughput.get)
    return {
        "threads_in_onnx_runtime": settings.LOUPE_INFERENCE_THREADS or "all cores",
        "iterations": iterations,
        "pipeline_ms": {"p50": percentile(totals, 50), "p95": percentile(totals, 95)},
        "pipeline_phases_p50_ms": {phase: percentile(values, 50) for phase, values in phases.items()},
        "throughput_per_second_by_threads": throughput,
        "throughput_limit_per_second": throughput[best],
        "throughput_limit_threads": best,
    }


def _predictor_throughput(predictor, images: list[bytes], *, threads: int, seconds: float) -> float:
    """Predictions per second with `threads` threads calling `predict` back to back."""
    sequence = itertools.count()
    done = [0] * threads
    deadline = time.perf_counter() + seconds

    def work(number: int) -> None:
        while time.perf_counter() < deadline:
            predictor.predict(images[next(sequence) % len(images)])
            done[number] += 1

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(done) / (time.perf_counter() - started)


def load_phase(
    url: str, key: str, images: list[bytes], *, clients: int, seconds: float, tag: str, bare: bool = False
) -> dict:
    """`clients` threads, each posting back to back on its own connection for `seconds`; `bare`:
    to bench/bare_server.py's /predict (no key, no serial, 200 for success) instead of Loupe."""
    endpoint = f"{url}/predict" if bare else f"{url}/api/v1/units/"
    sequence = itertools.count()
    answers: list[list[Answer]] = [[] for _ in range(clients)]
    start = time.monotonic()
    deadline = start + seconds

    def client(number: int) -> None:
        with requests.Session() as session:
            if not bare:
                session.headers["Authorization"] = f"Api-Key {key}"
            while time.monotonic() < deadline:
                index = next(sequence)
                serial = f"{tag}-{index:07d}"
                clock = time.perf_counter()
                try:
                    response = session.post(
                        endpoint,
                        files={"image": (f"{serial}.jpg", images[index % len(images)], "image/jpeg")},
                        data={} if bare else {"serial": serial},
                        timeout=REQUEST_TIMEOUT_SECONDS,
                    )
                except requests.RequestException as error:
                    answer = Answer(
                        None, f"{type(error).__name__}: {error}"[:200], 0.0, time.monotonic(), None
                    )
                else:
                    latency_ms = (time.perf_counter() - clock) * 1000
                    if bare and response.status_code == 200:
                        answer = Answer(201, None, latency_ms, time.monotonic(), None, True)
                    elif response.status_code == 201:
                        body = response.json()
                        decided = body["status"] == "decided"
                        answer = Answer(201, None, latency_ms, time.monotonic(), body["id"], decided)
                    else:
                        answer = Answer(
                            response.status_code, response.text[:200], latency_ms, time.monotonic(), None
                        )
                answers[number].append(answer)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flat = [answer for per_client in answers for answer in per_client]
    accepted = [answer for answer in flat if answer.status == 201]
    latencies = [answer.latency_ms for answer in accepted]
    elapsed = max((answer.finished for answer in flat), default=deadline) - start
    errors = Counter(f"{answer.status} {answer.error}" for answer in flat if answer.status != 201)
    return {
        "clients": clients,
        "seconds": elapsed,
        "requests": len(flat),
        "accepted": len(accepted),
        "decided_at_once": sum(answer.decided for answer in accepted),
        "errors": sum(errors.values()),
        "error_messages": dict(errors.most_common(5)),
        "latency_ms": {
            q: (percentile(latencies, n) if latencies else None)
            for q, n in (("p50", 50), ("p95", 95), ("p99", 99))
        },
        "throughput_per_second": len(accepted) / elapsed if elapsed > 0 else 0.0,
        "unit_ids": [answer.unit_id for answer in accepted if answer.unit_id is not None],
        "latencies": latencies,
    }


# Issue 16's goals, Loupe against the bare server in the same run.
GOAL_THROUGHPUT_OVER_BARE = 1.0
GOAL_ONE_CLIENT_P50_OVER_BARE = 1.15
GOAL_SIXTEEN_CLIENTS_P99_OVER_BARE = 1.5
GOAL_SIXTEEN_OVER_FOUR = 0.95
INTERLEAVED_PHASES = 2


def against_bare(
    loupe_url: str,
    key: str,
    images: list[bytes],
    bundle: Path,
    client_counts: list[int],
    *,
    seconds: float,
    warmup: float,
    log_path: Path,
) -> dict:
    """Loupe and the bare server in turns on the same images: per client count a warm-up each,
    then Loupe, bare, Loupe, bare, so that whatever else the machine does falls on both."""
    port = free_port()
    bare_url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        str(Path(__file__).with_name("bare_server.py")),
        str(bundle),
        "--port",
        str(port),
    ]
    bare = process_start(command, environment=dict(os.environ), log_path=log_path)
    rows, unit_ids = [], []
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
        while True:
            if bare.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bench/bare_server.py did not start:\n{log_tail(log_path)}")
            try:
                if requests.get(f"{bare_url}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.3)
        for clients in client_counts:
            runs: dict[str, list[dict]] = {"loupe": [], "bare": []}
            for name, url in (("loupe", loupe_url), ("bare", bare_url)):
                warm = load_phase(
                    url, key, images, clients=clients, seconds=warmup, tag=f"bw{clients}", bare=name == "bare"
                )
                unit_ids += warm["unit_ids"]
            for repeat in range(INTERLEAVED_PHASES):
                for name, url in (("loupe", loupe_url), ("bare", bare_url)):
                    tag = f"b{clients}-{repeat}"
                    runs[name].append(
                        load_phase(
                            url, key, images, clients=clients, seconds=seconds, tag=tag, bare=name == "bare"
                        )
                    )
            row = {"clients": clients}
            for name, phases in runs.items():
                latencies = [value for phase in phases for value in phase["latencies"]]
                accepted = sum(phase["accepted"] for phase in phases)
                elapsed = sum(phase["seconds"] for phase in phases)
                row[name] = {
                    "requests": sum(phase["requests"] for phase in phases),
                    "errors": sum(phase["errors"] for phase in phases),
                    "p50_ms": percentile(latencies, 50) if latencies else None,
                    "p99_ms": percentile(latencies, 99) if latencies else None,
                    "units_per_second": accepted / elapsed if elapsed > 0 else 0.0,
                }
                unit_ids += [unit_id for phase in phases for unit_id in phase["unit_ids"]]
            row["throughput_ratio"] = row["loupe"]["units_per_second"] / row["bare"]["units_per_second"]
            rows.append(row)
            print(
                f"{clients} client(s): Loupe p50 {_ms(row['loupe']['p50_ms'])} ms, "
                f"{row['loupe']['units_per_second']:.1f}/s; bare p50 {_ms(row['bare']['p50_ms'])} ms, "
                f"{row['bare']['units_per_second']:.1f}/s; Loupe / bare {row['throughput_ratio']:.2f}",
                flush=True,
            )
    finally:
        process_stop(bare, timeout=10)
    by_clients = {row["clients"]: row for row in rows}
    goals = {
        f"throughput_over_bare_at_{row['clients']}": goal_check(
            row["throughput_ratio"],
            GOAL_THROUGHPUT_OVER_BARE,
            row["throughput_ratio"] >= GOAL_THROUGHPUT_OVER_BARE,
        )
        for row in rows
    }
    if 1 in by_clients:
        ratio = by_clients[1]["loupe"]["p50_ms"] / by_clients[1]["bare"]["p50_ms"]
        goals["one_client_p50_over_bare"] = goal_check(
            ratio, GOAL_ONE_CLIENT_P50_OVER_BARE, ratio <= GOAL_ONE_CLIENT_P50_OVER_BARE
        )
    if 16 in by_clients:
        ratio = by_clients[16]["loupe"]["p99_ms"] / by_clients[16]["bare"]["p99_ms"]
        goals["sixteen_clients_p99_over_bare"] = goal_check(
            ratio, GOAL_SIXTEEN_CLIENTS_P99_OVER_BARE, ratio <= GOAL_SIXTEEN_CLIENTS_P99_OVER_BARE
        )
    if 4 in by_clients and 16 in by_clients:
        ratio = by_clients[16]["loupe"]["units_per_second"] / by_clients[4]["loupe"]["units_per_second"]
        goals["loupe_sixteen_over_four"] = goal_check(
            ratio, GOAL_SIXTEEN_OVER_FOUR, ratio >= GOAL_SIXTEEN_OVER_FOUR
        )
    print("\n| clients | Loupe p50 / p99 ms / units/s | bare p50 / p99 ms / units/s | Loupe ÷ bare |")
    print("|---|---|---|---|")
    for row in rows:
        loupe, plain = row["loupe"], row["bare"]
        print(
            f"| {row['clients']} | {_ms(loupe['p50_ms'])} / {_ms(loupe['p99_ms'])} / "
            f"{loupe['units_per_second']:.1f} | {_ms(plain['p50_ms'])} / {_ms(plain['p99_ms'])} / "
            f"{plain['units_per_second']:.1f} | {row['throughput_ratio']:.2f} |"
        )
    for name, goal in goals.items():
        print(f"{name}: {goal['measured']:.3g} (goal {goal['goal']}) {'met' if goal['met'] else 'NOT met'}")
    return {
        "seconds_per_phase": seconds,
        "phases_each": INTERLEAVED_PHASES,
        "rows": rows,
        "goals": goals,
        "unit_ids": unit_ids,
    }


def server_model_ms_p50(station, tag: str) -> float | None:
    """The median of the predictor's own time inside the server (`Prediction.latency_ms`: the
    image arrives decoded by the upload check), for one phase's units."""
    from inspection.models import Prediction

    values = list(
        Prediction.objects.filter(unit__station=station, unit__serial__startswith=f"{tag}-").values_list(
            "latency_ms", flat=True
        )
    )
    return percentile(values, 50) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per client count")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds before each")
    parser.add_argument("--clients", default="1,4,16", help="client counts, comma-separated")
    parser.add_argument("--predictor-iterations", type=int, default=200)
    parser.add_argument("--predictor-seconds", type=float, default=5.0, help="per thread count")
    parser.add_argument(
        "--embedded", action="store_true", help="SQLite and the embedded Redis even if PostgreSQL answers"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bundle", type=Path, help="a model bundle (default: the starter model)")
    parser.add_argument(
        "--geometry",
        choices=("aspect", "tiles"),
        default="aspect",
        help="the starter model (aspect) or a model of the native-resolution geometry (tiles)",
    )
    parser.add_argument(
        "--busy-training", action="store_true", help="a training runs on the machine through the phases"
    )
    parser.add_argument("--size", default="1280x720", help="frame WIDTHxHEIGHT of the generated units")
    parser.add_argument(
        "--against-bare",
        action="store_true",
        help="also measure Loupe and bench/bare_server.py (FastAPI + ONNX Runtime, the same graph) "
        "side by side, interleaved, two phases each per client count (issue 16)",
    )
    parser.add_argument("--bare-seconds", type=float, default=8.0, help="seconds per interleaved phase")
    args = parser.parse_args()
    client_counts = [int(part) for part in args.clients.split(",") if part.strip()]
    width, height = (int(side) for side in args.size.lower().split("x"))

    bundle = args.bundle or (tiles_bundle() if args.geometry == "tiles" else starter_bundle())
    print(f"model bundle: {bundle}", flush=True)
    images = unit_images(IMAGE_COUNT, args.seed, width, height)
    data_dir = Path(tempfile.mkdtemp(prefix="loupe-bench-api-"))
    backends = Backends(data_dir, embedded=args.embedded, name="api")
    server = None
    training = None
    django_ready = False
    try:
        print(
            f"database: {backends.describe()['database']}; Redis: {backends.describe()['redis']}", flush=True
        )
        environment = {**embedded_environment(data_dir), **backends.environment()}
        django_start(environment)
        django_ready = True
        station, key = station_prepare(bundle, data_dir)

        from django.conf import settings

        layout = settings.WEB_LAYOUT
        server = Server(environment, data_dir=data_dir, log_path=data_dir / "uvicorn.log")
        start_seconds = server.wait_until_healthy()
        print(
            f"web layout for {layout.describe()}; healthy after {start_seconds:.1f} s on {server.url}",
            flush=True,
        )

        predictor = predictor_alone(
            bundle, images, iterations=args.predictor_iterations, seconds=args.predictor_seconds
        )
        print(
            f"predictor alone: pipeline p50 {predictor['pipeline_ms']['p50']:.1f} ms; throughput limit "
            f"{predictor['throughput_limit_per_second']:.1f}/s with {predictor['throughput_limit_threads']} "
            "thread(s)",
            flush=True,
        )

        if args.busy_training:
            training = busy_training_start(data_dir / "busy-training.log")
            print("a training keeps the machine busy from here on", flush=True)

        phases, accepted_ids, warmup_errors = [], [], 0
        for clients in client_counts if args.seconds > 0 else []:
            warmup = load_phase(
                server.url, key, images, clients=clients, seconds=args.warmup, tag=f"w{clients}"
            )
            measured = load_phase(
                server.url, key, images, clients=clients, seconds=args.seconds, tag=f"c{clients}"
            )
            accepted_ids += warmup.pop("unit_ids") + measured.pop("unit_ids")
            warmup.pop("latencies"), measured.pop("latencies")
            warmup_errors += warmup["errors"]
            measured["server_model_ms_p50"] = server_model_ms_p50(station, f"c{clients}")
            phases.append(measured)
            print(
                f"{clients} client(s): {measured['requests']} requests, {measured['errors']} errors, "
                f"p50 {measured['latency_ms']['p50'] or 0:.1f} ms, {measured['throughput_per_second']:.1f}/s",
                flush=True,
            )

        comparison = None
        if args.against_bare:
            comparison = against_bare(
                server.url, key, images, bundle, client_counts, seconds=args.bare_seconds, warmup=args.warmup,
                log_path=data_dir / "bare-server.log",
            )  # fmt: skip
            accepted_ids += comparison.pop("unit_ids")

        from inspection.models import Unit

        stored_ids = set(Unit.objects.filter(station=station).values_list("id", flat=True))
        stored = {
            "accepted": len(accepted_ids),
            "distinct_ids_answered": len(set(accepted_ids)),
            "stored": len(stored_ids),
            "lost": len(set(accepted_ids) - stored_ids),
            "stored_but_never_answered": len(stored_ids - set(accepted_ids)),
        }
        result = report(args, backends, predictor, phases, stored, warmup_errors)
        result["image"] = (
            f"{width}x{height} JPEG (quality {JPEG_QUALITY}), {IMAGE_COUNT} distinct generated units"
        )
        result["bundle"] = str(bundle)
        result["geometry"] = args.geometry
        result["busy_training"] = args.busy_training
        result["web_layout"] = dataclasses.asdict(layout)
        if comparison is not None:
            result["against_bare"] = comparison
    finally:
        if training is not None:
            process_stop(training, timeout=15)
        if server is not None:
            server.stop()
        if django_ready:
            from django.db import connections

            connections.close_all()
        backends.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    path = write_result("api", result)
    print(f"written to {path}")


def report(
    args, backends: Backends, predictor: dict, phases: list[dict], stored: dict, warmup_errors: int
) -> dict:
    by_clients = {phase["clients"]: phase for phase in phases}
    pipeline_p50 = predictor["pipeline_ms"]["p50"]
    limit = predictor["throughput_limit_per_second"]
    goals = {}
    if 1 in by_clients and by_clients[1]["latency_ms"]["p50"] is not None:
        ratio = by_clients[1]["latency_ms"]["p50"] / pipeline_p50
        goals["one_client_p50_over_pipeline"] = goal_check(
            ratio, GOAL_ONE_CLIENT_P50_OVER_PIPELINE, ratio <= GOAL_ONE_CLIENT_P50_OVER_PIPELINE
        )
    if phases:
        most = 16 if 16 in by_clients else max(by_clients)
        ratio = by_clients[most]["throughput_per_second"] / limit
        goals["sixteen_clients_throughput_over_predictor"] = {
            **goal_check(
                ratio, GOAL_SIXTEEN_CLIENTS_OVER_PREDICTOR, ratio >= GOAL_SIXTEEN_CLIENTS_OVER_PREDICTOR
            ),
            "measured_at_clients": most,
        }
    errors = sum(phase["errors"] for phase in phases) + warmup_errors
    goals["errors"] = goal_check(errors, 0, errors == 0)
    goals["lost"] = goal_check(
        stored["lost"], 0, stored["lost"] == 0 and stored["accepted"] == stored["stored"]
    )

    print()
    print("| clients | requests | errors | p50 ms | p95 ms | p99 ms | units/s | model in server p50 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for phase in phases:
        latency = phase["latency_ms"]
        print(
            f"| {phase['clients']} | {phase['requests']} | {phase['errors']} | {_ms(latency['p50'])} | "
            f"{_ms(latency['p95'])} | {_ms(latency['p99'])} | {phase['throughput_per_second']:.1f} | "
            f"{_ms(phase['server_model_ms_p50'])} |"
        )
    by_threads = predictor["throughput_per_second_by_threads"]
    print(
        f"\npredictor alone: pipeline p50 {pipeline_p50:.1f} ms (sequential), throughput limit {limit:.1f}/s "
        f"(best of {', '.join(f'{n} thread(s) {value:.1f}/s' for n, value in by_threads.items())})"
    )
    print(
        f"units accepted (201) {stored['accepted']}, stored {stored['stored']}, lost {stored['lost']}, "
        f"stored but never answered {stored['stored_but_never_answered']}"
    )
    for name, goal in goals.items():
        where = f" (at {goal['measured_at_clients']} clients)" if "measured_at_clients" in goal else ""
        verdict = "met" if goal["met"] else "NOT met"
        print(f"{name}{where}: {goal['measured']:.3g} (goal {goal['goal']}) {verdict}")

    return {
        "backends": backends.describe(),
        "seconds_per_phase": args.seconds,
        "warmup_seconds": args.warmup,
        "station": f"{STATION}: full automation, audit share 0",
        "predictor_alone": predictor,
        "phases": phases,
        "warmup_errors": warmup_errors,
        "units": stored,
        "goals": goals,
    }


def _ms(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "-"


if __name__ == "__main__":
    main()
