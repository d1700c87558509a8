"""Helpers shared by the benchmarks: a throwaway embedded Loupe, commands timed as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
DATASETS = REPOSITORY.parent / "shared" / "datasets"
OUT = REPOSITORY / "bench" / "out"


def embedded_environment(data_dir: Path) -> dict[str, str]:
    """The embedded default (SQLite, local MLflow) in `data_dir`, whatever the caller's shell has."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "MLFLOW_TRACKING_URI")
    }
    env["LOUPE_DATA_DIR"] = str(data_dir)
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def manage(env: dict[str, str], *args: str, json_output: bool = False) -> tuple[float, dict | str]:
    """Run `manage.py ARGS`; return its wall time and its stdout (parsed when `json_output`)."""
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, str(REPOSITORY / "manage.py"), *args],
        env=env,
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr[-4000:])
        raise SystemExit(f"manage.py {' '.join(args)} failed with exit code {completed.returncode}")
    if json_output:
        return seconds, json.loads(completed.stdout.strip().splitlines()[-1])
    return seconds, completed.stdout


def require_dataset(name: str) -> Path:
    path = DATASETS / name
    if not path.exists():
        raise SystemExit(f"skipped: {path} not found (the benchmark needs ../shared/datasets/{name})")
    return path


def write_result(name: str, result: dict) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    return path
