"""Model quality and training time on a real defect set, through the commands a user runs.

    python bench/model_quality.py neu-det [--epochs N] [--input-size S]
    python bench/model_quality.py magnetic-tile

Imports the set into a fresh embedded Loupe, trains (`manage.py train --json`), evaluates the
registered version on the frozen test split (`manage.py evaluate --json`), and prints the
figures next to the issue's goals. Results go to bench/out/<set>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, embedded_environment, manage, require_dataset, write_result  # noqa: E402

SETS = {
    "neu-det": {
        "format": "voc",
        "epochs": 10,
        "goals": {"image_accuracy": 0.97, "box_map50": 0.70, "coverage_at_error.0.02": 0.90},
    },
    "magnetic-tile": {
        "format": "masks",
        "epochs": 10,
        "goals": {"image_auroc": 0.95, "pixel_auroc": 0.90},
    },
}
TRAINING_GOAL_SECONDS = 15 * 60


def lookup(metrics: dict, dotted: str):
    value = metrics
    for part in dotted.split(".", 1):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", choices=SETS)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--input-size", type=int, help="override the geometry's long side")
    parser.add_argument("--geometry", choices=["auto", "aspect", "tiles", "squash"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    spec = SETS[args.dataset]
    source = require_dataset(args.dataset)
    data_dir = OUT / f"{args.dataset}-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    env = embedded_environment(data_dir)
    manage(env, "migrate", "--noinput")
    import_seconds, summary = manage(
        env,
        "import_dataset",
        str(source),
        "--name",
        args.dataset,
        "--format",
        spec["format"],
        "--json",
        json_output=True,
    )
    epochs = args.epochs or spec["epochs"]
    # The default `train` chooses the geometry from the data; --input-size or --geometry override it.
    geometry_options = ["--input-size", str(args.input_size)] if args.input_size else []
    if args.geometry:
        geometry_options += ["--geometry", args.geometry]
    train_seconds, trained = manage(
        env,
        "train",
        "--dataset",
        args.dataset,
        "--epochs",
        str(epochs),
        *geometry_options,
        "--seed",
        str(args.seed),
        "--json",
        json_output=True,
    )
    evaluate_seconds, metrics = manage(
        env, "evaluate", "--model", trained["model"], "--dataset", args.dataset, "--json", json_output=True
    )
    goals = {
        key: {"goal": goal, "measured": lookup(metrics, key), "met": (lookup(metrics, key) or 0) >= goal}
        for key, goal in spec["goals"].items()
    }
    goals["train_seconds"] = {
        "goal": TRAINING_GOAL_SECONDS,
        "measured": round(train_seconds, 1),
        "met": train_seconds <= TRAINING_GOAL_SECONDS,
    }
    result = {
        "dataset": args.dataset,
        "images": summary.get("images_added"),
        "epochs": epochs,
        "geometry": trained["geometry"],
        "geometry_reason": trained["geometry_reason"],
        "seconds": {
            "import": round(import_seconds, 1),
            "train_command": round(train_seconds, 1),
            "train_phases": trained["seconds"],
            "evaluate_command": round(evaluate_seconds, 1),
        },
        "model": trained["model"],
        "goals": goals,
        "test_metrics": metrics,
    }
    path = write_result(args.dataset, result)
    print(json.dumps({k: v for k, v in result.items() if k != "test_metrics"}, indent=2))
    print(f"full results: {path}")


if __name__ == "__main__":
    main()
