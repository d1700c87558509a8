"""Geometries side by side on fine defects at 1920x1080: which one `train` should choose.

    python bench/geometry.py [--count 1000] [--geometries squash,aspect,tiles-half,tiles-native]

A generated set of 1920x1080 phone screens with fine defects (hairline scratches 1-3 px wide, small
spots, the other kinds; half the units defective; exact masks) is imported once into a throwaway
embedded Loupe. Each geometry is then trained with `manage.py train` as a user runs it (timed
whole), evaluated with `manage.py evaluate` on the frozen test split (image AUROC, box mAP@0.5),
and run unit by unit through the predictor as the line API runs it (decode, frame check, views,
forward, merge), for the milliseconds per frame and the recall of small defects: those under
0.05 % of the frame's area (a 2x300 px hairline on 1920x1080 is 0.03 %), counted found when the
unit is failed and a region covers at least half of the defect's pixels.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import OUT, django_start, embedded_environment, manage, write_result  # noqa: E402

DATASET = "fine-screens"
SMALL_DEFECT_AREA = 0.0005
COVERED = 0.5
GEOMETRIES = {
    "squash": ["--geometry", "squash", "--input-size", "256"],  # what every model did before
    "aspect": ["--geometry", "aspect", "--input-size", "512"],
    "tiles-half": ["--geometry", "tiles", "--tile-scale", "0.5"],
    "tiles-native": ["--geometry", "tiles", "--tile-scale", "1.0"],
    "auto": [],  # what `train` chooses by itself
}
GOALS = {"image_auroc": 0.97, "box_map50": 0.70, "small_defect_recall": 0.90, "ms_per_frame": 250}
TRAINING_GOAL_MINUTES = 15


def generate(folder: Path, count: int, seed: int) -> Path:
    from models_registry.ml.synthetic.config import SyntheticConfig
    from models_registry.ml.synthetic.writing import write_dataset

    if (folder / "annotations.json").exists():
        return folder
    config = SyntheticConfig(width=1920, height=1080, fine_defects=True)
    started = time.monotonic()
    write_dataset(folder, count, seed=seed, config=config, format="coco", overwrite=True, workers=2)
    print(f"generated {count} units in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return folder


def small_defect_recall(model: str, split: str = "test") -> dict:
    """Run the registered model over the split as the line API would, unit by unit."""
    from PIL import Image

    from labeling.selectors import dataset_get, dataset_samples
    from models_registry.selectors import model_version_get
    from models_registry.services import predictor_get

    predictor = predictor_get(model_version=model_version_get(reference=model))
    samples = [
        s for s in dataset_samples(dataset=dataset_get(name=DATASET), split=split) if s.defective is not None
    ]
    milliseconds, small_found, small_total, frame_problems = [], 0, 0, 0
    for sample in samples:
        data = Path(sample.image_path).read_bytes()
        started = time.perf_counter()
        problem, prediction = predictor.check_and_predict(data)
        milliseconds.append((time.perf_counter() - started) * 1000)
        if problem is not None:
            frame_problems += 1
            continue
        for _, mask_path in sample.mask_paths:
            with Image.open(mask_path) as picture:
                mask = np.asarray(picture.convert("L")) >= 128
            if not mask.any() or mask.mean() >= SMALL_DEFECT_AREA:
                continue
            small_total += 1
            if prediction.verdict != "fail":
                continue
            pixels = mask.sum()
            for region in prediction.regions:
                x1, y1 = int(region.x), int(region.y)
                x2, y2 = int(np.ceil(region.x + region.width)), int(np.ceil(region.y + region.height))
                if mask[y1:y2, x1:x2].sum() >= COVERED * pixels:
                    small_found += 1
                    break
    return {
        "units": len(samples),
        "small_defects": small_total,
        "small_defects_found": small_found,
        "small_defect_recall": small_found / small_total if small_total else None,
        "frames_refused_by_the_frame_check": frame_problems,
        "ms_per_frame_p50": statistics.median(milliseconds),
        "ms_per_frame_p95": float(np.percentile(milliseconds, 95)),
        "units_per_second_one_at_a_time": 1000 / statistics.mean(milliseconds),
        "geometry": predictor.geometry.as_dict(),
        "views_per_frame": predictor.geometry.views_per_frame(1920, 1080),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--epochs", type=int, help="default: train's own (the default recipe)")
    parser.add_argument("--geometries", default=",".join(GEOMETRIES))
    args = parser.parse_args()
    chosen = args.geometries.split(",")
    unknown = set(chosen) - set(GEOMETRIES)
    if unknown:
        raise SystemExit(f"unknown geometries {sorted(unknown)}: choose from {', '.join(GEOMETRIES)}")

    units = generate(OUT / f"geometry-units-{args.count}-{args.seed}", args.count, args.seed)
    data_dir = OUT / f"geometry-data-{args.count}-{args.seed}"
    env = embedded_environment(data_dir)
    marker = data_dir / "imported"
    if not marker.exists():
        manage(env, "migrate", "--noinput")
        manage(env, "import_dataset", str(units), "--name", DATASET, "--format", "coco")
        marker.write_text("yes")
    django_start(env)

    path = OUT / "geometry.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for name in chosen:
        print(f"--- {name}", file=sys.stderr)
        train_seconds, trained = manage(
            env,
            "train", "--dataset", DATASET, "--model-name", f"fine-{name}",
            *(["--epochs", str(args.epochs)] if args.epochs else []), *GEOMETRIES[name], "--json",
            json_output=True,
        )  # fmt: skip
        _, evaluated = manage(
            env, "evaluate", "--model", trained["model"], "--dataset", DATASET, "--json", json_output=True
        )
        line = small_defect_recall(trained["model"])
        results[name] = {
            "model": trained["model"],
            "geometry": trained["geometry"],
            "geometry_reason": trained["geometry_reason"],
            "epochs": args.epochs or "train's default (12)",
            "training_minutes": round(train_seconds / 60, 1),
            "train_phases_seconds": trained["seconds"],
            "image_auroc": evaluated["image_auroc"],
            "box_map50": evaluated["box_map50"],
            "image_accuracy": evaluated["image_accuracy"],
            "pixel_auroc": evaluated["pixel_auroc"],
            "coverage_at_error": evaluated["coverage_at_error"],
            **line,
        }
        results[name]["goals_met"] = {
            "image_auroc": (evaluated["image_auroc"] or 0) >= GOALS["image_auroc"],
            "box_map50": (evaluated["box_map50"] or 0) >= GOALS["box_map50"],
            "small_defect_recall": (line["small_defect_recall"] or 0) >= GOALS["small_defect_recall"],
            "ms_per_frame": line["ms_per_frame_p50"] <= GOALS["ms_per_frame"],
            "training_minutes": train_seconds / 60 <= TRAINING_GOAL_MINUTES,
        }
        write_result("geometry", results)
        print(json.dumps(results[name], indent=2))
    print(f"written to {OUT / 'geometry.json'}")


if __name__ == "__main__":
    main()
