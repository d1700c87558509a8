"""Fault drills on the production topology: nothing accepted is ever lost.

`python bench/faults.py [--rate 10] [--clients 16] [--phase-seconds 40] [--faults NAME,...]`
starts `deploy.topology.LocalProduction` (nginx over TLS, 2 web processes, 2 workers, the trainer,
beat, MLflow, PostgreSQL and Redis of its own), trains a small starter model, and makes a station at
full automation (no audits) with a webhook to a receiver in this process and a challenger in shadow,
so that every unit queues a webhook delivery and a challenger prediction on Celery.

A line then posts 1920x1080 JPEGs at a steady rate from `--clients` threads, each post carrying an
Idempotency-Key, retried as a real line client does (a connection error, a timeout, 429, 502, 503 or
504: the same request again after a backoff, for up to two minutes). A WebSocket subscriber (the line's
device key) follows the station's feed, reconnecting when it drops. One fault per phase, `FAULT_AT`
seconds into it:

- web: SIGKILL web-1 mid-request; started again 3 s later (systemd's Restart=always, RestartSec=3);
- worker: SIGKILL worker-1 while webhooks and challenger predictions are queued; started 3 s later;
- redis: Redis stopped (SIGTERM, its AOF flushed) and started 5 s later;
- postgres: PostgreSQL stopped (fast shutdown: open connections cut) and started 5 s later;
- trainer: a retraining (of the demo station) queued, the training worker SIGKILLed once it runs,
  started 3 s later; the job is taken back after LOUPE_TRAINING_STALE_SECONDS and trained again;
- disk: the media filesystem filled to its last megabyte for 10 s, then freed.

After the last phase it waits for the queues to drain, then counts per phase, from the database, the
media folder, the receiver and the subscriber: units sent, answered 201, stored (row and file, the
file's SHA-256 that of the bytes sent), decided, webhooks delivered (distinct delivery ids per
decision), challenger predictions, and events seen live. Lost: a 201 whose unit is not stored, a
stored unit with no decision, a decision with no delivered webhook. Duplicated: two rows for one
serial, two decisions for one unit, two delivery ids for one decision. Recovery: from the fault to the
last failed attempt of the phase (0 when no attempt failed).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import io
import json
import shutil
import ssl
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import OUT, write_result  # noqa: E402
from bench.simulate_line import AUTHORIZATION_KEYWORD, UNITS_PATH  # noqa: E402
from deploy.topology import LocalProduction, TopologyError  # noqa: E402
from models_registry.ml.synthetic.config import SyntheticConfig  # noqa: E402
from models_registry.ml.synthetic.scene import generate_unit  # noqa: E402

STATION = "drill"
TRAINING_STATION = "demo-line"
FAULTS = ("none", "web", "worker", "redis", "postgres", "trainer", "disk")
FAULT_AT = 10.0
RETRYABLE = {429, 502, 503, 504}
RETRY_FOR_SECONDS = 120.0
REQUEST_TIMEOUT = 30.0
MEDIA_LIMIT_BYTES = 3 * 1024**3
POOL_SIZE = 24
DRAIN_SECONDS = 300.0
WEBHOOK_SECRET = "drill-webhook-secret-0123456789"


# --- the line ---------------------------------------------------------------------------------


@dataclass
class Post:
    serial: str
    phase: str
    sha256: str
    attempts: list[tuple[float, float, str]] = field(default_factory=list)  # (start, end, outcome)
    status: int | None = None
    unit_id: int | None = None
    decision: str | None = None


class Line:
    """Posts at `rate` units/s, open loop, each post retried until it is answered for good."""

    def __init__(self, topology: LocalProduction, key: str, pool: list[bytes], *, clients: int) -> None:
        self.url = topology.url + UNITS_PATH
        self.key = key
        self.pool = pool
        self.hashes = [hashlib.sha256(jpeg).hexdigest() for jpeg in pool]
        self.verify = str(topology.certificate)
        self.clients = clients
        self.posts: list[Post] = []
        self._local = threading.local()
        self._run = uuid.uuid4().hex[:6]
        self.errors: dict[str, str] = {}  # the last message of each kind of exception, for the log

    def run_phase(self, phase: str, *, rate: float, seconds: float, during=None) -> None:
        executor = ThreadPoolExecutor(max_workers=self.clients, thread_name_prefix=f"line-{phase}")
        fault = threading.Timer(FAULT_AT, during) if during is not None else None
        start = time.monotonic()
        if fault is not None:
            fault.start()
        for index in range(int(rate * seconds)):
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            choice = index % len(self.pool)
            post = Post(serial=f"{phase}-{self._run}-{index:05d}", phase=phase, sha256=self.hashes[choice])
            self.posts.append(post)
            executor.submit(self._post, post, self.pool[choice])
        if fault is not None:
            fault.join()
        executor.shutdown(wait=True)
        outcomes = Counter(o for post in self.posts if post.phase == phase for (_, _, o) in post.attempts)
        print(f"faults: phase {phase}: attempts {dict(outcomes)}; exceptions {self.errors}", flush=True)
        self.errors = {}

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["Authorization"] = f"{AUTHORIZATION_KEYWORD} {self.key}"
            self._local.session = session
        return session

    def _post(self, post: Post, jpeg: bytes) -> None:
        deadline = time.monotonic() + RETRY_FOR_SECONDS
        backoff = 0.25
        captured_at = datetime.now(UTC).isoformat()  # the camera's time: the same on every retry
        while True:
            started = time.monotonic()
            try:
                response = self._session().post(
                    self.url,
                    files={"image": (f"{post.serial}.jpg", jpeg, "image/jpeg")},
                    data={"serial": post.serial, "captured_at": captured_at},
                    headers={"Idempotency-Key": post.serial},
                    # Per request: requests lets REQUESTS_CA_BUNDLE override a session's verify.
                    verify=self.verify,
                    timeout=REQUEST_TIMEOUT,
                )
            except requests.RequestException as error:
                post.attempts.append((started, time.monotonic(), type(error).__name__))
                self.errors[type(error).__name__] = str(error)[:300]
                self._local.session = None  # a fresh connection, as after a reset
            else:
                post.attempts.append((started, time.monotonic(), str(response.status_code)))
                if response.status_code not in RETRYABLE:
                    post.status = response.status_code
                    if response.status_code == 201:
                        body = response.json()
                        post.unit_id, post.decision = body["id"], body.get("decision")
                    return
            if time.monotonic() + backoff > deadline:
                return
            time.sleep(backoff)
            backoff = min(backoff * 2, 4.0)


# --- what reaches the line's other ends -------------------------------------------------------


class WebhookReceiver:
    """The line's MES: takes every delivery with a 200, remembering each by its delivery id."""

    def __init__(self) -> None:
        self.received: list[tuple[str, int, str]] = []  # (delivery id, decision id, serial)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver._lock:
                    receiver.received.append(
                        (self.headers["X-Loupe-Delivery"], body["decision_id"], body["unit"]["serial"])
                    )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/loupe"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


class Subscriber:
    """The station's live feed over wss through the proxy, reconnecting when it drops."""

    def __init__(self, topology: LocalProduction, key: str) -> None:
        self.url = topology.url.replace("https://", "wss://") + f"/ws/stations/{STATION}/events/"
        self.key = key
        self.context = ssl.create_default_context(cafile=str(topology.certificate))
        self.decided: Counter = Counter()
        self.disconnected_seconds = 0.0
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        from websockets.sync.client import connect

        while not self._stop.is_set():
            dropped = time.monotonic()
            try:
                with connect(
                    self.url,
                    ssl=self.context,
                    additional_headers={"Authorization": f"{AUTHORIZATION_KEYWORD} {self.key}"},
                    open_timeout=5,
                ) as socket:
                    if self.reconnects:
                        self.disconnected_seconds += time.monotonic() - dropped
                    self.reconnects += 1
                    while not self._stop.is_set():
                        with contextlib.suppress(TimeoutError):
                            message = json.loads(socket.recv(timeout=1))
                            if message.get("type") == "unit.decided":
                                self.decided[message["unit"]["serial"]] += 1
            except Exception:  # noqa: BLE001 (any drop: reconnect, as the station page does)
                time.sleep(0.5)
                self.disconnected_seconds += 0.5

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# --- the faults -------------------------------------------------------------------------------


def fault_action(name: str, topology: LocalProduction, marks: dict):
    def restart(service: str, *, kill: bool, pause: float):
        def act():
            marks["at"] = time.monotonic()
            if kill:
                topology.kill(service)
            else:
                topology.stop(service)
            time.sleep(pause)
            topology.start(service)
            topology.wait_serving(service)
            marks["back"] = time.monotonic()

        return act

    def trainer():
        # The demo station: its data set has the starter model's labels (the drill's has none).
        topology.manage("retrain", "--station", TRAINING_STATION)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "running" not in _training_state(topology):
            time.sleep(1)
        marks["at"] = time.monotonic()
        marks["training_before"] = _training_state(topology)
        topology.kill("trainer")
        time.sleep(3)
        topology.start("trainer")
        marks["back"] = time.monotonic()

    def disk():
        ballast = topology.media_root / "ballast"
        marks["at"] = time.monotonic()
        try:
            with open(ballast, "wb") as file:
                chunk = b"\0" * (16 * 1024 * 1024)
                while shutil.disk_usage(topology.media_root).free > 1024 * 1024:
                    file.write(chunk[: max(4096, shutil.disk_usage(topology.media_root).free - 1024 * 1024)])
                    file.flush()
        except OSError as error:  # the line's own images filled the rest first: full is the point
            if error.errno != errno.ENOSPC:
                raise
        try:
            time.sleep(10)
        finally:
            ballast.unlink()
        marks["back"] = time.monotonic()

    return {
        "none": None,
        "web": restart("web-1", kill=True, pause=3),
        "worker": restart("worker-1", kill=True, pause=3),
        "redis": restart("redis", kill=False, pause=5),
        "postgres": restart("postgres", kill=False, pause=5),
        "trainer": trainer,
        "disk": disk,
    }[name]


def _training_state(topology: LocalProduction) -> str:
    return topology.manage(
        "shell", "-c",
        "from workers.models import TrainingJob;"
        "print(list(TrainingJob.objects.order_by('id').values_list('id', 'status', 'attempts')))",
    ).strip()  # fmt: skip


# --- set-up and accounting --------------------------------------------------------------------

SETUP = """
from inspection.models import Station
from inspection.services.rollout import challenger_set
from models_registry import mlflow_registry
from models_registry.models import ModelVersion
champion = ModelVersion.objects.get(name="loupe-demo")
copy = mlflow_registry.register_model(run_id=champion.mlflow_run_id, name=champion.name)
challenger = ModelVersion.objects.create(
    name=copy.name, version=copy.version, mlflow_run_id=copy.run_id, source_uri=copy.source,
    dataset_name=champion.dataset_name, architecture=champion.architecture, geometry=champion.geometry,
    classes=champion.classes, metrics=champion.metrics, risk_control=champion.risk_control,
)
Station.objects.filter(slug="{station}").update(webhook_secret="{secret}")
challenger_set(station=Station.objects.get(slug="{station}"), model_version=challenger, user=None)
# The drill's generated frames drift from the starter model's data: a drift alarm would step the
# station down to humans mid-drill, and "decided" would count the policy, not the faults.
from inspection.supervision.models import DriftSettings
drift = DriftSettings.of(Station.objects.get(slug="{station}"))
drift.alarm_step_down = False
drift.save()
"""

WEBHOOK = """
from inspection.models import Station
Station.objects.filter(slug="{station}").update(webhook_url="{url}")
"""

COUNT = """
import hashlib, json
from pathlib import Path
from django.conf import settings
from inspection.models import DecisionEvent, Prediction, Unit
from inspection.webhooks.models import WebhookDelivery
units = {{}}
rows = Unit.objects.filter(station__slug="{station}").values("id", "serial", "image", "image_sha256")
for unit in rows:
    path = Path(settings.MEDIA_ROOT) / unit["image"]
    stored = path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == unit["image_sha256"]
    row = {{"id": unit["id"], "sha256": unit["image_sha256"], "file": stored}}
    units.setdefault(unit["serial"], []).append(row)
decisions = {{}}
events = DecisionEvent.objects.filter(unit__station__slug="{station}").values_list("unit_id", "id")
for unit_id, decision_id in events:
    decisions.setdefault(unit_id, []).append(decision_id)
deliveries = dict(WebhookDelivery.objects.values_list("decision_id", "status"))
shadow = Prediction.objects.filter(unit__station__slug="{station}", role="challenger_shadow")
challenger = list(shadow.values_list("unit_id", flat=True))
state = {{"units": units, "decisions": decisions, "deliveries": deliveries, "challenger": challenger}}
print(json.dumps(state))
"""


def drained(topology: LocalProduction) -> dict:
    return json.loads(topology.manage("shell", "-c", COUNT.format(station=STATION)).strip().splitlines()[-1])


def phase_figures(
    phase: str, line: Line, state: dict, receiver: WebhookReceiver, subscriber: Subscriber, marks
):
    posts = [post for post in line.posts if post.phase == phase]
    units, decisions = state["units"], {int(k): v for k, v in state["decisions"].items()}
    deliveries = {int(k): v for k, v in state["deliveries"].items()}
    challenger = Counter(state["challenger"])
    delivered_ids: dict[int, set[str]] = defaultdict(set)
    raw: Counter = Counter()
    for delivery_id, decision_id, _serial in receiver.received:
        delivered_ids[decision_id].add(delivery_id)
        raw[delivery_id] += 1
    answered = [post for post in posts if post.status == 201]
    rows = [row for post in posts for row in units.get(post.serial, [])]
    stored = [
        post
        for post in answered
        if any(r["file"] and r["sha256"] == post.sha256 for r in units.get(post.serial, []))
    ]
    decided_ids = [
        d for post in posts for row in units.get(post.serial, []) for d in decisions.get(row["id"], [])
    ]
    failures = [end for post in posts for (start, end, outcome) in post.attempts if outcome != "201"]
    at = marks.get("at")
    recovery = max((end - at for end in failures if at is not None and end >= at), default=0.0) if at else 0.0
    figures = {
        "fault": phase,
        "sent": len(posts),
        "answered_201": len(answered),
        "gave_up": sum(1 for post in posts if post.status is None),
        "refused_4xx": sum(1 for post in posts if post.status is not None and post.status != 201),
        "retried": sum(1 for post in posts if len(post.attempts) > 1),
        "failed_attempts": Counter(o for post in posts for (_, _, o) in post.attempts if o != "201"),
        "stored_row_and_file": len(stored),
        "lost_201_not_stored": len(answered) - len(stored),
        "duplicate_rows": len(rows) - len({post.serial for post in posts if units.get(post.serial)}),
        "decided": len(decided_ids),
        "duplicate_decisions": len(decided_ids) - len(set(decided_ids)),
        "webhooks_delivered_once": sum(1 for d in decided_ids if len(delivered_ids.get(d, ())) == 1),
        "webhooks_missing": sum(1 for d in decided_ids if not delivered_ids.get(d)),
        "webhook_duplicate_ids": sum(1 for d in decided_ids if len(delivered_ids.get(d, ())) > 1),
        "webhook_retried_posts": sum(raw[i] - 1 for d in decided_ids for i in delivered_ids.get(d, ())),
        "webhook_rows_not_delivered": sum(1 for d in decided_ids if deliveries.get(d) != "delivered"),
        "challenger_predictions": sum(
            challenger[row["id"]] > 0 for post in posts for row in units.get(post.serial, [])
        ),
        "challenger_duplicates": sum(
            max(0, challenger[row["id"]] - 1) for post in posts for row in units.get(post.serial, [])
        ),
        "events_seen_live": sum(1 for post in posts if subscriber.decided.get(post.serial)),
        "recovery_seconds": round(recovery, 1),
    }
    figures["failed_attempts"] = dict(figures["failed_attempts"])
    figures["lost"] = (
        figures["lost_201_not_stored"]
        + figures["gave_up"]
        + figures["webhooks_missing"]
        + (len(stored) - len({post.serial for post in stored if units.get(post.serial)}))
    )
    figures["duplicated"] = (
        figures["duplicate_rows"] + figures["duplicate_decisions"] + figures["webhook_duplicate_ids"]
    )
    for key in ("training_before", "training_after"):
        if key in marks:
            figures[key] = marks[key]
    return figures


def table_markdown(result: dict) -> str:
    """The phases as bench/RESULTS.md shows them."""
    lines = [
        "| fault | sent | 201 | retried (failed attempts) | stored, hash matches | decided | webhooks once "
        "(missing, 2 ids) | shadow predictions | events seen live | lost | duplicated | recovery s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["phases"]:
        failed = ", ".join(f"{count} × {outcome}" for outcome, count in row["failed_attempts"].items()) or "–"
        lines.append(
            f"| {row['fault']} | {row['sent']} | {row['answered_201']} | {row['retried']} ({failed}) | "
            f"{row['stored_row_and_file']} | {row['decided']} | {row['webhooks_delivered_once']} "
            f"({row['webhooks_missing']}, {row['webhook_duplicate_ids']}) | "
            f"{row['challenger_predictions']} | {row['events_seen_live']} | {row['lost']} | "
            f"{row['duplicated']} | {row['recovery_seconds']} |"
        )
    return "\n".join(lines)


def frames(count: int) -> list[bytes]:
    config = SyntheticConfig(width=1920, height=1080)
    pool = []
    for index in range(count):
        unit = generate_unit(np.random.default_rng([5, index]), config)
        buffer = io.BytesIO()
        unit.image.convert("RGB").save(buffer, "JPEG", quality=90)
        pool.append(buffer.getvalue())
    return pool


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--phase-seconds", type=float, default=40.0)
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument(
        "--reuse", action="store_true", help="keep the last run's databases (and its trained model)"
    )
    options = parser.parse_args(argv)
    faults = options.faults.split(",")
    receiver = WebhookReceiver()
    environment = {
        # The receiver listens on this machine: an operator allow-lists such a target.
        "LOUPE_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        # A dead trainer's job is taken back within the drill, not after the default two minutes.
        "LOUPE_TRAINING_STALE_SECONDS": "30",
        "LOUPE_TRAINING_HEARTBEAT_SECONDS": "5",
        "LOUPE_RETRAIN_EPOCHS": "1",
    }
    clock = time.monotonic()
    print("faults: frames ...", flush=True)
    pool = frames(POOL_SIZE)
    root = OUT / "faults-topology"  # kept after the run: its logs/ tell what each process saw
    if root.exists() and not options.reuse:
        shutil.rmtree(root)
    with LocalProduction(root, media_limit_bytes=MEDIA_LIMIT_BYTES, environment=environment) as topology:
        started = time.monotonic() - clock
        print(f"faults: topology up at {topology.url}; training the starter model ...", flush=True)
        topology.manage("ensure_demo", "--count", "96", "--epochs", "2")
        try:
            topology.manage(
                "create_station", STATION, "--level", "full", "--model", "loupe-demo", "--audit-share", "0"
            )
        except TopologyError as error:
            if "already exists" not in str(error):  # --reuse: made by the last run
                raise
        else:
            topology.manage("shell", "-c", SETUP.format(station=STATION, secret=WEBHOOK_SECRET))
        topology.manage("shell", "-c", WEBHOOK.format(station=STATION, url=receiver.url))
        key = topology.manage("create_device_key", STATION).strip().splitlines()[-1]
        subscriber = Subscriber(topology, key)
        line = Line(topology, key, pool, clients=options.clients)
        marks: dict[str, dict] = {}
        for name in faults:
            marks[name] = {}
            print(f"faults: phase {name} ({options.phase_seconds:.0f} s at {options.rate:g}/s)", flush=True)
            line.run_phase(
                name,
                rate=options.rate,
                seconds=options.phase_seconds,
                during=fault_action(name, topology, marks[name]),
            )
        print("faults: draining the queues ...", flush=True)
        deadline = time.monotonic() + DRAIN_SECONDS
        while True:
            state = drained(topology)
            pending = [d for d, status in state["deliveries"].items() if status != "delivered"]
            decided = sum(len(v) for v in state["decisions"].values())
            training = _training_state(topology) if "trainer" in marks else ""
            settled = not pending and len(state["challenger"]) >= decided
            if (
                settled and "queued" not in training and "running" not in training
            ) or time.monotonic() > deadline:
                break
            time.sleep(10)
        if "trainer" in marks:
            marks["trainer"]["training_after"] = _training_state(topology)
        subscriber.close()
        table = [phase_figures(name, line, state, receiver, subscriber, marks[name]) for name in faults]
        result = {
            "rate": options.rate,
            "clients": options.clients,
            "phase_seconds": options.phase_seconds,
            "frame": "1920x1080 JPEG",
            "topology_start_seconds": round(started, 1),
            "subscriber_reconnects": subscriber.reconnects - 1,
            "subscriber_disconnected_seconds": round(subscriber.disconnected_seconds, 1),
            "phases": table,
            "logs": str(topology.root / "logs"),
        }
    receiver.close()
    path = write_result("faults", result)
    print(json.dumps(result, indent=2))
    print(table_markdown(result))
    print(f"faults: written to {path}")
    return 0 if all(row["lost"] == 0 and row["duplicated"] == 0 for row in table) else 1


if __name__ == "__main__":
    sys.exit(main())
