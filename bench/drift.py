"""Drift alarms (issue 6): how many units until a lighting change or a new defect type raises an
alarm, and how many false alarms 5,000 in-distribution units raise at the chosen significance.

    python bench/drift.py [--units 5000] [--windows 100,200] [--embedded]

Generated phone-screen units (`models_registry.ml.synthetic`, the generator behind
`manage.py generate_synthetic`), at 320x180, JPEG 90. Against the local PostgreSQL and Redis when
they answer (a throwaway database), else the embedded SQLite and Redis; MLflow is the embedded
store of a throwaway data folder.

1. The champion: `model_version_train` (EfficientNet-Lite0 with its ImageNet weights, 128 px,
   6 epochs) on 400 generated units, 30 % of them kept for validation: its validation units are
   the drift reference.
2. Streams, each to its own fully automated station (2 % blind audits, judged by an inspector who
   is always right), every unit through `unit_submit` as the line API does, so the champion
   predicts it on the request path and its prediction keeps the embedding summary:
   - in-distribution: `--units` units like the training data;
   - lighting: 300 units as before, then the hall's lights at 70 % (`brightness=0.7`);
   - new defect: 300 units as before, then half the units defective and every defective unit
     chipped (`new_defect="chip"`), a defect the model never saw.
3. For each window size, the drift checks run over each stream as the Celery task does
   (`workers.drift_checks.station_drift_check`, called directly: the beat sweep would queue it as
   soon as a window fills). Reported: windows and checks with an alarm on the in-distribution
   stream, and for the drifted streams the number of drifted units posted until the first alarm,
   with the tests that raised it. The cost of a check is given as a ratio to the model's own
   forward time over the units of the window (the physical limit of watching them at all).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import OUT, Backends, django_start, embedded_environment, write_result  # noqa: E402

WIDTH, HEIGHT, JPEG_QUALITY = 320, 180, 90
TRAIN_UNITS, VALIDATION_SHARE = 400, 0.3
BEFORE_DRIFT, DRIFTED = 300, 1500
AUDIT_SHARE, SIGNIFICANCE = 0.02, 0.01


def jpeg(unit) -> bytes:
    buffer = io.BytesIO()
    unit.image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def training_samples(seed: int) -> list:
    """The champion's data: generated units with their masks, kept in bench/out."""
    from PIL import Image

    from models_registry.ml.synthetic.config import SyntheticConfig
    from models_registry.ml.synthetic.scene import generate_unit
    from models_registry.ml.types import Sample

    folder = OUT / f"drift-train-{WIDTH}x{HEIGHT}-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    config = SyntheticConfig(width=WIDTH, height=HEIGHT)
    samples = []
    for index in range(TRAIN_UNITS):
        image_path, mask_path, truth_path = (
            folder / f"unit_{index:04d}{suffix}" for suffix in (".jpg", ".png", ".json")
        )
        if not truth_path.exists():
            unit = generate_unit(np.random.default_rng([seed, index]), config)
            image_path.write_bytes(jpeg(unit))
            if unit.defective:
                Image.fromarray((unit.mask * 255).astype(np.uint8)).save(mask_path)
            truth_path.write_text(json.dumps({"label": unit.label}))
        label = json.loads(truth_path.read_text())["label"]
        defective = label != "no_defect"
        samples.append(
            Sample(
                key=image_path.stem,
                image_path=str(image_path),
                defective=defective,
                classes=(label,) if defective else (),
                mask_paths=((label, str(mask_path)),) if defective else (),
            )
        )
    return samples


def stream_post(station, inspector, *, seed: int, count: int, drift_from: int, drifted_config) -> dict:
    """Post `count` units (drifted from index `drift_from` on); the inspector judges the audits.
    Returns the unit id where the drift starts and the seconds taken."""
    from inspection.enums import UnitStatus
    from inspection.services.decisions import decision_record
    from inspection.services.units import unit_submit
    from models_registry.ml.synthetic.config import SyntheticConfig
    from models_registry.ml.synthetic.scene import generate_unit

    plain = SyntheticConfig(width=WIDTH, height=HEIGHT)
    first_drifted_unit = None
    started = time.monotonic()
    for index in range(count):
        config = drifted_config if index >= drift_from else plain
        unit = generate_unit(np.random.default_rng([seed, index]), config)
        submission = unit_submit(
            station=station, serial=f"{station.slug}-{index}", image_data=jpeg(unit), filename="unit.jpg"
        )
        if index == drift_from:
            first_drifted_unit = submission.unit.pk
        if submission.unit.status == UnitStatus.PENDING:  # a blind audit: the inspector is always right
            decision_record(
                unit=submission.unit,
                user=inspector,
                verdict="fail" if unit.defective else "pass",
                defect_classes=[unit.label]
                if unit.defective and unit.label in station.defect_classes
                else [],
            )
        if (index + 1) % 500 == 0:
            print(
                f"  {station.slug}: {index + 1}/{count} units ({time.monotonic() - started:.0f} s)",
                flush=True,
            )
    return {"first_drifted_unit": first_drifted_unit, "seconds": time.monotonic() - started}


def checks_replay(station, window: int, *, step_down: bool) -> list:
    """Run the drift checks over everything the station holds, with `window` units per check, from
    a clean slate (no earlier checks or alarms of this station)."""
    from inspection.enums import AutomationLevel
    from inspection.models import StationChange
    from inspection.supervision.models import Alarm, DriftCheck, DriftSettings
    from workers.drift_checks import station_drift_check

    # A throwaway benchmark database: the replay may forget the previous replay's audit rows.
    StationChange.objects.filter(station=station, alarm__isnull=False).delete()
    Alarm.objects.filter(station=station).delete()
    DriftCheck.objects.filter(station=station).delete()
    type(station).objects.filter(pk=station.pk).update(automation_level=AutomationLevel.FULL)
    DriftSettings.objects.update_or_create(
        station_id=station.pk, defaults={"drift_window": window, "alarm_step_down": step_down}
    )
    station.refresh_from_db()  # forgets the cached settings rows too
    checks = []
    while True:
        made = station_drift_check(station=station)
        if not made:
            return checks
        checks += made


def forward_ms(station) -> float:
    from inspection.models import Prediction

    timings = Prediction.objects.filter(unit__station=station).values_list("timings_ms", flat=True)
    return float(np.median([t["forward"] for t in timings]))


def shifted_tests(check) -> list[str]:
    return [f"{t['name']} (p={t['adjusted_p_value']:.1e})" for t in check.tests if t["shifted"]]


def in_distribution_figures(station, window: int) -> dict:
    checks = checks_replay(station, window, step_down=False)
    flagged = [c for c in checks if c.shifted]
    from inspection.supervision.models import Alarm

    return {
        "window": window,
        "checks": len(checks),
        "units_checked": sum(c.window_size for c in checks),
        "checks_with_alarm": len(flagged),
        "alarms": Alarm.objects.filter(station=station).count(),
        "expected_at_significance": round(len(checks) * SIGNIFICANCE, 2),
        "flagged": [{"last_unit": c.last_unit_id, "tests": shifted_tests(c)} for c in flagged],
        "check_seconds_median": float(np.median([c.seconds for c in checks])) if checks else None,
    }


def drift_figures(station, window: int, first_drifted_unit: int) -> dict:
    from inspection.models import Unit
    from inspection.supervision.models import Alarm

    checks = sorted(checks_replay(station, window, step_down=True), key=lambda c: c.last_unit_id)
    before = [c for c in checks if c.last_unit_id < first_drifted_unit]
    alarmed = next((c for c in checks if c.shifted and c.last_unit_id >= first_drifted_unit), None)
    result = {
        "window": window,
        "checks_before_drift": len(before),
        "false_alarms_before_drift": sum(c.shifted for c in before),
    }
    if alarmed is None:
        drifted = Unit.objects.filter(station=station, pk__gte=first_drifted_unit).count()
        return {**result, "units_until_alarm": None, "not_detected_within": drifted}
    station.refresh_from_db()
    alarms = Alarm.objects.filter(station=station, drift_check=alarmed)
    return {
        **result,
        "units_until_alarm": Unit.objects.filter(
            station=station, pk__gte=first_drifted_unit, pk__lte=alarmed.last_unit_id
        ).count(),
        "tests": shifted_tests(alarmed),
        "alarms": [f"{a.kind}: {a.summary}" for a in alarms],
        "level_after": station.automation_level,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=5000, help="in-distribution units")
    parser.add_argument("--drifted", type=int, default=DRIFTED, help="drifted units per drift stream")
    parser.add_argument("--windows", default="100,200", help="units per drift check, comma-separated")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--embedded", action="store_true", help="SQLite and the embedded Redis")
    args = parser.parse_args()
    windows = [int(w) for w in args.windows.split(",")]

    data_dir = Path(tempfile.mkdtemp(prefix="loupe-bench-drift-"))
    backends = Backends(data_dir, embedded=args.embedded, name="drift")
    try:
        environment = {**embedded_environment(data_dir), **backends.environment()}
        django_start(environment)
        from django.contrib.auth.models import Group, User

        from inspection.enums import AutomationLevel
        from inspection.services.stations import station_create
        from models_registry.ml.geometry import GeometryRequest
        from models_registry.ml.synthetic.config import DEFECT_CLASSES, SyntheticConfig
        from models_registry.services import model_version_train

        clock = time.monotonic()
        samples = training_samples(seed=1)
        cut = int(len(samples) * (1 - VALIDATION_SHARE))
        trained = model_version_train(
            model_name="bench-drift",
            dataset_name="generated",
            classes=DEFECT_CLASSES,
            train=samples[:cut],
            validation=samples[cut:],
            epochs=args.epochs,
            geometry=GeometryRequest(input_size=args.input_size),
        )
        champion = trained.model_version
        training_seconds = time.monotonic() - clock
        print(
            f"champion {champion} trained in {training_seconds:.0f} s: {champion.metrics['validation']}",
            flush=True,
        )
        inspector = User.objects.create_user("ines")
        inspector.groups.add(Group.objects.get(name="inspector"))

        def station(slug: str):
            return station_create(
                slug=slug,
                level=AutomationLevel.FULL,
                champion=champion,
                audit_share=AUDIT_SHARE,
                drift_significance=SIGNIFICANCE,
                alarm_step_down=False,
            )

        plain = SyntheticConfig(width=WIDTH, height=HEIGHT)
        streams = {
            "lighting": (SyntheticConfig(width=WIDTH, height=HEIGHT, brightness=0.7), 3),
            "new_defect": (
                SyntheticConfig(width=WIDTH, height=HEIGHT, defect_rate=0.5, new_defect="chip"),
                4,
            ),
        }
        normal = station("in-distribution")
        posted = {
            "in_distribution": stream_post(
                normal, inspector, seed=2, count=args.units, drift_from=args.units, drifted_config=plain
            )
        }
        drifted_stations = {}
        for name, (config, seed) in streams.items():
            drifted_stations[name] = station(name.replace("_", "-"))
            posted[name] = stream_post(
                drifted_stations[name],
                inspector,
                seed=seed,
                count=BEFORE_DRIFT + args.drifted,
                drift_from=BEFORE_DRIFT,
                drifted_config=config,
            )

        result = {
            "backends": backends.describe(),
            "champion": {
                "version": str(champion),
                "validation": champion.metrics["validation"],
                "training_seconds": training_seconds,
            },
            "units": {
                "width": WIDTH,
                "height": HEIGHT,
                "jpeg_quality": JPEG_QUALITY,
                "input_size": args.input_size,
            },
            "significance": SIGNIFICANCE,
            "audit_share": AUDIT_SHARE,
            "posting_seconds": {name: round(p["seconds"], 1) for name, p in posted.items()},
            "forward_ms_median": forward_ms(normal),
            "windows": {},
        }
        for window in windows:
            figures = {"in_distribution": in_distribution_figures(normal, window)}
            for name, drifted_station in drifted_stations.items():
                figures[name] = drift_figures(drifted_station, window, posted[name]["first_drifted_unit"])
            check_seconds = figures["in_distribution"]["check_seconds_median"]
            figures["check_cost_ratio"] = check_seconds * 1000 / (window * result["forward_ms_median"])
            result["windows"][str(window)] = figures
            print(json.dumps({window: figures}, indent=2), flush=True)
        path = write_result("drift", result)
        print(f"written to {path}")
    finally:
        backends.close()


if __name__ == "__main__":
    main()
