"""The retraining loop (issue 5): labels in through the services, a retrained candidate out of a
real Celery worker, gated against the champion on the station's frozen test split.

    python bench/retrain_loop.py [--epochs 12] [--input-size 256] [--embedded]

On generated 640x360 phone-screen units (`models_registry.ml.synthetic`), against the local
PostgreSQL and Redis when they answer (a throwaway database and a spare Redis database, removed
afterwards), else the embedded SQLite and Redis; MLflow is the embedded store of a throwaway data
folder. One `celery worker` subprocess (solo pool) runs every training; the recipe is
`manage.py train`'s default (EfficientNet-Lite0 with its ImageNet weights, batch 16), at
`--input-size` px for `--epochs` epochs.

1. The champion: 100 units are posted through `unit_submit` to a human-only station and judged by
   an inspector through `decision_record` (pass, or fail with the defect's class and its region
   drawn): 100 labelled units, whose first snapshot freezes the test split (15 %). A retraining
   (`manage.py retrain`'s request) trains the station's first model from them; it passes the gate
   (no champion yet) and a supervisor makes it champion.
2. The loop, timed: the station goes AI-assisted; 300 more units are posted (the champion predicts
   each on the request path) and judged by the inspector; a labeler then works the 100 most useful
   tasks of the labeling queue (`label_submit`, boxes or "no defect") and a second person accepts
   each (`review_accept`). The beat's trigger sweep (`training_triggers_sweep`, the station retrains
   after 300 new labels) is called after 250 labels (nothing is due) and after all of them (one job);
   the worker trains, evaluates candidate and champion on the frozen test split and gates.
3. Not part of the loop: both models are also evaluated on 200 further generated units no one
   labelled, for a steadier comparison than the 15 frozen test units give.

Generated units are kept in bench/out for later runs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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

STATION = "bench-retrain"
WIDTH, HEIGHT = 640, 360
FIRST_UNITS = 100
NEW_UNITS = 300
SWEEP_EARLY_AT = 250
LABELER_TASKS = 100
HELD_OUT_UNITS = 200
JPEG_QUALITY = 90
GOAL_LOOP_SECONDS = 15 * 60
WORKER_START_TIMEOUT_SECONDS = 120
JOB_TIMEOUT_SECONDS = 60 * 60


@dataclass(frozen=True)
class GeneratedUnit:
    path: Path
    label: str  # "no_defect" or the defect class
    boxes: tuple[tuple[float, float, float, float], ...]  # x, y, width, height in pixels

    @property
    def defective(self) -> bool:
        return self.label != "no_defect"


def units_generate(count: int, seed: int) -> list[GeneratedUnit]:
    """`count` generated units as JPEGs with their truth, made once and kept in bench/out."""
    from models_registry.ml.synthetic.config import SyntheticConfig
    from models_registry.ml.synthetic.scene import generate_unit

    folder = OUT / f"retrain-units-{WIDTH}x{HEIGHT}-q{JPEG_QUALITY}-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    config = SyntheticConfig(width=WIDTH, height=HEIGHT)
    units = []
    for index in range(count):
        image_path, truth_path = folder / f"unit_{index:04d}.jpg", folder / f"unit_{index:04d}.json"
        if not truth_path.exists():
            unit = generate_unit(np.random.default_rng([seed, index]), config)
            buffer = io.BytesIO()
            unit.image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
            image_path.write_bytes(buffer.getvalue())
            boxes = [list(map(float, instance.box)) for instance in unit.instances]
            truth_path.write_text(json.dumps({"label": unit.label, "boxes": boxes}))
        truth = json.loads(truth_path.read_text())
        units.append(GeneratedUnit(image_path, truth["label"], tuple(tuple(box) for box in truth["boxes"])))
    return units


def people():
    from django.contrib.auth.models import Group, User

    from inspection.roles import INSPECTOR, LABELER, SUPERVISOR

    made = {}
    for name, role in (("ines", INSPECTOR), ("lea", LABELER), ("rui", LABELER), ("sam", SUPERVISOR)):
        user = User.objects.create_user(name)
        user.groups.add(Group.objects.get(name=role))
        made[name] = user
    return made


def units_post_and_judge(station, units: list[GeneratedUnit], inspector, first_serial: int) -> None:
    """Each unit posted as the line does, then the inspector's verdict: pass, or fail with the
    class and the defect's regions drawn."""
    from inspection.services.decisions import HumanRegion, decision_record
    from inspection.services.units import unit_submit

    for offset, unit in enumerate(units):
        submission = unit_submit(
            station=station,
            serial=f"SN-{first_serial + offset:06d}",
            image_data=unit.path.read_bytes(),
            filename=unit.path.name,
        )
        decision_record(
            unit=submission.unit,
            user=inspector,
            verdict="fail" if unit.defective else "pass",
            defect_classes=[unit.label] if unit.defective else [],
            regions=[HumanRegion(*box, unit.label) for box in unit.boxes],
        )


def labels_refine(station, truth: dict[str, GeneratedUnit], labeler, reviewer, count: int) -> int:
    """The labeler works the queue's most useful tasks, a second person accepts each label."""
    from labeling.work import Shape, label_submit, label_task_claim_next, review_accept

    done = 0
    for _ in range(count):
        task = label_task_claim_next(station=station, user=labeler)
        if task is None:
            break
        unit = truth[task.item.image.sha256]
        shapes = [
            Shape(
                kind="box",
                label=unit.label,
                geometry=dict(zip(("x", "y", "width", "height"), box, strict=True)),
            )
            for box in unit.boxes
        ]
        submission = label_submit(task=task, user=labeler, shapes=shapes, no_defect=not unit.defective)
        review_accept(submission=submission, user=reviewer)
        done += 1
    return done


def sha256_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


class Worker:
    """`celery worker` (solo pool) in its own process group, on the benchmark's backends."""

    def __init__(self, environment: dict[str, str], log_path: Path) -> None:
        self.hostname = f"bench-retrain-{os.getpid()}@localhost"
        self.log_path = log_path
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "--pool", "solo", "--concurrency", "1", "--loglevel", "INFO",
            "--hostname", self.hostname, "--without-mingle", "--without-gossip",
            "--queues", "celery,training",  # the default queue and the trainings' (config/settings.py)
        ]  # fmt: skip
        self.process = process_start(command, environment=environment, log_path=log_path)

    def wait_until_ready(self) -> float:
        from config.celery import app

        started = time.monotonic()
        while time.monotonic() - started < WORKER_START_TIMEOUT_SECONDS:
            if self.process.poll() is not None:
                raise SystemExit(f"the worker exited:\n{self.log_tail()}")
            if app.control.ping(destination=[self.hostname], timeout=0.5):
                return time.monotonic() - started
        raise SystemExit(f"the worker did not answer:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return log_tail(self.log_path)

    def stop(self) -> None:
        process_stop(self.process, timeout=30)


def job_follow(job, worker: Worker) -> dict:
    """Poll the job until it ends; the moments (monotonic) it started and finished its training steps."""
    moments: dict[str, float] = {}
    last_epoch = None
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while job.active:
        if time.monotonic() > deadline or worker.process.poll() is not None:
            raise SystemExit(f"job {job.pk} stuck at {job.status}:\n{worker.log_tail()}")
        if job.status == "running":
            moments.setdefault("running", time.monotonic())
            if job.steps and job.step >= job.steps:
                moments.setdefault("steps_done", time.monotonic())
            if job.epoch != last_epoch and job.epochs:
                loss = f", loss {job.loss:.3f}" if job.loss is not None else ""
                print(f"  job {job.pk}: epoch {job.epoch}/{job.epochs}{loss}", flush=True)
                last_epoch = job.epoch
        time.sleep(0.5)
        job.refresh_from_db()
    moments["finished"] = time.monotonic()
    moments.setdefault("running", moments["finished"])
    moments.setdefault("steps_done", moments["finished"])
    return moments


def held_out_samples(units: list[GeneratedUnit]):
    from models_registry.ml.types import Box, Sample

    return [
        Sample(
            key=unit.path.stem,
            image_path=str(unit.path),
            defective=unit.defective,
            classes=(unit.label,) if unit.defective else (),
            boxes=tuple(Box(*box, unit.label) for box in unit.boxes),
        )
        for unit in units
    ]


HEADLINE = (
    "n_test",
    "image_auroc",
    "image_accuracy",
    "ece",
    "box_map50",
    "coverage_at_error",
    "error_among_automated",
)


def headline(metrics: dict | None) -> dict | None:
    return None if metrics is None else {key: metrics.get(key) for key in HEADLINE}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--epochs", type=int, default=12, help="training epochs (manage.py train's default: 12)"
    )
    parser.add_argument("--input-size", type=int, default=256, help="network input side in pixels")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--embedded", action="store_true", help="SQLite and the embedded Redis even if PostgreSQL answers"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    clock = time.monotonic()
    units = units_generate(FIRST_UNITS + NEW_UNITS + HELD_OUT_UNITS, args.seed)
    first, new, held_out = units[:FIRST_UNITS], units[FIRST_UNITS:-HELD_OUT_UNITS], units[-HELD_OUT_UNITS:]
    print(f"{len(units)} generated units ready ({time.monotonic() - clock:.0f} s)", flush=True)

    data_dir = Path(tempfile.mkdtemp(prefix="loupe-bench-retrain-"))
    backends = Backends(data_dir, embedded=args.embedded, name="retrain")
    worker = None
    django_ready = False
    seconds: dict[str, float] = {}
    try:
        print(
            f"database: {backends.describe()['database']}; Redis: {backends.describe()['redis']}", flush=True
        )
        environment = {
            **embedded_environment(data_dir),
            **backends.environment(),
            "LOUPE_RETRAIN_EPOCHS": str(args.epochs),
            "LOUPE_RETRAIN_INPUT_SIZE": str(args.input_size),
            "LOUPE_RETRAIN_BATCH_SIZE": str(args.batch_size),
            "LOUPE_RETRAIN_BACKBONE": "efficientnet_lite0",
            "LOUPE_RETRAIN_PRETRAINED": "1",
        }
        django_start(environment)
        django_ready = True

        from inspection.enums import AutomationLevel
        from inspection.services.stations import station_create, station_update
        from labeling.models import Split
        from labeling.snapshots import snapshot_samples
        from models_registry.services import model_version_evaluate
        from workers.models import TrainingTrigger
        from workers.retraining import training_job_request, training_triggers_sweep

        worker = Worker(environment, data_dir / "celery-worker.log")
        seconds["worker_start"] = worker.wait_until_ready()
        crew = people()
        station = station_create(
            slug=STATION,
            level=AutomationLevel.HUMAN,
            defect_classes=["crack", "dead_pixels", "scratch", "stain"],
            retrain_after_labels=NEW_UNITS,
            created_by=crew["sam"],
        )

        # 1. The champion: 100 judged units, the first retraining, made champion by a supervisor.
        clock = time.monotonic()
        units_post_and_judge(station, first, crew["ines"], first_serial=0)
        seconds["champion_units_post_and_judge"] = time.monotonic() - clock
        clock = time.monotonic()
        first_job, _ = training_job_request(
            station=station, trigger=TrainingTrigger.COMMAND, user=crew["sam"]
        )
        print(
            f"champion: job {first_job.pk} on {first_job.snapshot} ({first_job.snapshot.counts})", flush=True
        )
        job_follow(first_job, worker)
        seconds["champion_training_job"] = time.monotonic() - clock
        if first_job.candidate is None:
            raise SystemExit(
                f"the first job ended {first_job.status}: {first_job.error}\n{worker.log_tail()}"
            )
        champion = first_job.candidate
        station_update(
            station=station,
            changes={"champion": champion, "automation_level": AutomationLevel.ASSISTED},
            user=crew["sam"],
            note="the first model of the station",
        )
        station.refresh_from_db()
        print(f"champion: {champion} ({first_job.get_status_display()})", flush=True)

        # 2. The loop.
        loop_started = time.monotonic()
        units_post_and_judge(station, new[:SWEEP_EARLY_AT], crew["ines"], first_serial=FIRST_UNITS)
        early = training_triggers_sweep()
        units_post_and_judge(
            station, new[SWEEP_EARLY_AT:], crew["ines"], first_serial=FIRST_UNITS + SWEEP_EARLY_AT
        )
        seconds["loop_units_post_and_judge"] = time.monotonic() - loop_started
        clock = time.monotonic()
        truth = {sha256_of(unit.path): unit for unit in first + new}
        refined = labels_refine(station, truth, crew["lea"], crew["rui"], LABELER_TASKS)
        seconds["loop_labeler_and_review"] = time.monotonic() - clock
        clock = time.monotonic()
        requested = training_triggers_sweep()
        seconds["loop_trigger_sweep_and_snapshot"] = time.monotonic() - clock
        if early or len(requested) != 1:
            raise SystemExit(
                f"the trigger misfired: after {SWEEP_EARLY_AT} labels {early}, after all {requested}"
            )
        job = requested[0]
        print(
            f"candidate: job {job.pk} ({job.get_trigger_display()}) on {job.snapshot} ({job.snapshot.counts})"
        )
        queued_at = time.monotonic()
        moments = job_follow(job, worker)
        seconds["loop_queue_wait"] = moments["running"] - queued_at
        seconds["loop_training_steps"] = moments["steps_done"] - moments["running"]
        seconds["loop_after_training"] = moments["finished"] - moments["steps_done"]
        seconds["loop_total"] = moments["finished"] - loop_started
        job.refresh_from_db()
        seconds["job_started_to_finished"] = (job.finished_at - job.started_at).total_seconds()
        if job.candidate is None:
            raise SystemExit(f"the retraining ended {job.status}: {job.error}\n{worker.log_tail()}")

        # 3. Beside the loop: a larger held-out set.
        clock = time.monotonic()
        held = held_out_samples(held_out)
        held_out_metrics = {
            "candidate": headline(model_version_evaluate(model_version=job.candidate, samples=held)),
            "champion": headline(model_version_evaluate(model_version=champion, samples=held)),
        }
        seconds["held_out_evaluation"] = time.monotonic() - clock
        test_units = len(snapshot_samples(snapshot=job.snapshot, split=Split.TEST))
        result = report(args, backends, first_job, job, refined, test_units, held_out_metrics, seconds)
    finally:
        if worker is not None:
            worker.stop()
        if django_ready:
            from django.db import connections

            connections.close_all()
        backends.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    path = write_result("retrain_loop", result)
    print(f"written to {path}")


def report(args, backends, first_job, job, refined, test_units, held_out_metrics, seconds) -> dict:
    evaluation = job.evaluation
    goals = {
        "loop_seconds": goal_check(
            seconds["loop_total"], GOAL_LOOP_SECONDS, seconds["loop_total"] <= GOAL_LOOP_SECONDS
        ),
    }
    print()
    print(f"gate: {'passed' if job.gate['passed'] else 'failed'}; job {job.get_status_display()}")
    for reason in job.gate["reasons"]:
        print(f"  {reason}")
    print(f"\n| figure | candidate {job.candidate} | champion {job.champion} |")
    print("|---|---|---|")
    for where, pair in (
        (f"frozen test split ({test_units} units)", (evaluation["candidate"], evaluation["champion"])),
        (
            f"held-out generated units ({HELD_OUT_UNITS})",
            (held_out_metrics["candidate"], held_out_metrics["champion"]),
        ),
    ):
        for key in ("image_auroc", "image_accuracy", "ece", "box_map50"):
            values = [metrics.get(key) for metrics in pair]
            shown = [f"{value:.3f}" if isinstance(value, float) else str(value) for value in values]
            print(f"| {where}: {key} | {shown[0]} | {shown[1]} |")
        for alpha in ("0.01", "0.02", "0.05"):
            values = [(metrics.get("coverage_at_error") or {}).get(alpha) for metrics in pair]
            shown = [f"{value:.3f}" if isinstance(value, float) else str(value) for value in values]
            print(f"| {where}: coverage at {alpha} error | {shown[0]} | {shown[1]} |")
    print()
    for name, value in seconds.items():
        print(f"{name}: {value:.1f} s")
    for name, goal in goals.items():
        print(f"{name}: {goal['measured']:.0f} (goal {goal['goal']}) {'met' if goal['met'] else 'NOT met'}")
    return {
        "units": f"generated {WIDTH}x{HEIGHT} JPEG (quality {JPEG_QUALITY}), half defective",
        "recipe": {
            "backbone": "efficientnet_lite0 (ImageNet weights)",
            "input_size": args.input_size,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
        },
        "backends": backends.describe(),
        "champion_job": {
            "snapshot": str(first_job.snapshot),
            "counts": first_job.snapshot.counts,
            "status": first_job.status,
            "test": headline(first_job.evaluation.get("candidate")),
        },
        "loop": {
            "new_labelled_units": NEW_UNITS,
            "refined_by_labeler_and_accepted": refined,
            "snapshot": str(job.snapshot),
            "counts": job.snapshot.counts,
            "trigger": job.trigger,
            "attempts": job.attempts,
            "status": job.status,
            "gate": job.gate,
            "candidate": str(job.candidate),
            "champion": str(job.champion),
            "frozen_test_units": test_units,
        },
        "frozen_test_split": {
            "candidate": headline(evaluation["candidate"]),
            "champion": headline(evaluation["champion"]),
        },
        "held_out": held_out_metrics,
        "seconds": seconds,
        "goals": goals,
    }


if __name__ == "__main__":
    main()
