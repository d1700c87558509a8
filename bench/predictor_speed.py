"""Predictor speed on one camera frame (1280x720 JPEG by default): the whole pipeline against
the bare forward of the same views.

    python bench/predictor_speed.py [--bundle DIR] [--size 1920x1080] [--iterations N]

The limit is the model's own forward pass on this machine over the frame's views (one for a
whole-frame geometry, every tile as one batch for a tiled one), measured in the same run, in
alternation with the pipeline (decode + preprocess + forward + merge + post-processing), so both
see the same machine state. Without --bundle, a starter model is made in a throwaway embedded
Loupe: the same starter model `make run` serves, so post-processing sees realistic outputs.
Eager torch is timed too, for the ONNX choice.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import OUT, embedded_environment, manage, write_result  # noqa: E402


def starter_bundle() -> Path:
    """The starter model `make run` serves, trained once (a few minutes) and kept in bench/out."""
    data_dir = OUT / "predictor-speed-data"
    bundles = sorted((data_dir / "model-cache").glob("*/*/loupe-model.json"))
    if bundles:
        return bundles[-1].parent
    shutil.rmtree(data_dir, ignore_errors=True)
    env = embedded_environment(data_dir)
    manage(env, "migrate", "--noinput")
    manage(env, "ensure_demo")
    bundles = sorted((data_dir / "model-cache").glob("*/*/loupe-model.json"))
    if not bundles:  # the demo trained but nothing downloaded it yet: fetch through predict
        image = next((data_dir / "demo").rglob("*.jpg"))
        manage(env, "predict", "--model", "loupe-demo", str(image))
        bundles = sorted((data_dir / "model-cache").glob("*/*/loupe-model.json"))
    return bundles[-1].parent


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", default="1280x720", help="frame WIDTHxHEIGHT (a generated phone screen)")
    args = parser.parse_args()
    width, height = (int(side) for side in args.size.lower().split("x"))

    from models_registry.ml.serving.predictor import OnnxPredictor, TorchPredictor
    from models_registry.ml.synthetic.config import SyntheticConfig
    from models_registry.ml.synthetic.scene import generate_unit

    bundle = args.bundle or starter_bundle()
    predictor = OnnxPredictor(bundle, threads=args.threads)
    unit = generate_unit(
        np.random.default_rng(1), SyntheticConfig(width=width, height=height, defect_rate=1.0)
    )
    buffer = io.BytesIO()
    unit.image.save(buffer, format="JPEG", quality=92)
    jpeg = buffer.getvalue()
    # decoded, resized and cut into views: the graph's own input
    views = predictor.geometry.views(predictor.content(predictor.decode(jpeg)))
    batch = np.stack([view.pixels for view in views])

    for _ in range(20):
        predictor.forward(batch)
        predictor.predict(jpeg)
    forward, pipeline, phases = [], [], {"decode": [], "preprocess": [], "forward": [], "postprocess": []}
    for _ in range(args.iterations):
        started = time.perf_counter()
        predictor.forward(batch)
        forward.append((time.perf_counter() - started) * 1000)
        prediction = predictor.predict(jpeg)
        pipeline.append(prediction.timings_ms["total"])
        for phase in phases:
            phases[phase].append(prediction.timings_ms[phase])

    torch_predictor = TorchPredictor(bundle, threads=args.threads)
    for _ in range(5):
        torch_predictor.forward(batch)
    torch_forward = []
    for _ in range(min(args.iterations, 60)):
        started = time.perf_counter()
        torch_predictor.forward(batch)
        torch_forward.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    count = 0
    while time.perf_counter() - started < 10:
        predictor.predict(jpeg)
        count += 1
    throughput = count / (time.perf_counter() - started)

    result = {
        "image": f"{width}x{height} JPEG (quality 92), one frame at a time",
        "geometry": predictor.geometry.as_dict(),
        "views_per_frame": len(views),
        "threads": args.threads,
        "iterations": args.iterations,
        "jpeg_bytes": len(jpeg),
        "onnx_forward_ms": {"p50": percentile(forward, 50), "p95": percentile(forward, 95)},
        "pipeline_ms": {"p50": percentile(pipeline, 50), "p95": percentile(pipeline, 95)},
        "pipeline_phases_p50_ms": {k: statistics.median(v) for k, v in phases.items()},
        "pipeline_over_forward_p50": percentile(pipeline, 50) / percentile(forward, 50),
        "goal_pipeline_over_forward": 1.5,
        "torch_eager_forward_ms_p50": percentile(torch_forward, 50),
        "onnx_speedup_over_torch": percentile(torch_forward, 50) / percentile(forward, 50),
        "pipeline_throughput_per_second": throughput,
        "regions_on_this_image": len(prediction.regions),
    }
    path = write_result("predictor_speed", result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
