"""Trainings for the line API benchmark (bench/api.py): a model of the native-resolution geometry
to serve, and a training that keeps the machine busy while the line posts.

    python bench/training.py --tiles      # train (once) and print the tiles model's bundle
    python bench/training.py --busy       # train over and over until stopped (SIGTERM)

Both train the product's network (`models_registry.ml.pipeline.train_bundle`, what the trainer
runs) on generated 1280x720 phone screens. The tiles model is trained briefly: the benchmark
measures its speed, which its weights do not change, not its quality (bench/geometry.py does).
The busy training uses torch's threads on every core, as the trainer process does.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import OUT  # noqa: E402

CLASSES = ("crack", "dead_pixels", "scratch", "stain")
TILES_FOLDER = OUT / "tiles-native-model"


def _samples(folder: Path, count: int, seed: int) -> list:
    """`count` generated 1280x720 units written as PNGs with their masks, as training samples."""
    from models_registry.ml.synthetic.config import SyntheticConfig
    from models_registry.ml.synthetic.writing import samples_write

    return samples_write(folder, count, seed=seed, config=SyntheticConfig(width=1280, height=720))


def tiles_bundle() -> Path:
    """A model of the native-resolution geometry (320 px tiles at 1x the camera's pixels), trained
    once for an epoch and kept in bench/out."""
    from models_registry.ml.geometry import TILE_OVERLAP, TILE_SIDE, TILES, Geometry
    from models_registry.ml.models.defectnet.training import TrainConfig
    from models_registry.ml.pipeline import train_bundle

    bundle = TILES_FOLDER / "bundle"
    if (bundle / "loupe-model.json").exists():
        return bundle
    shutil.rmtree(TILES_FOLDER, ignore_errors=True)
    outcome = train_bundle(
        out_dir=bundle,
        classes=CLASSES,
        train=_samples(TILES_FOLDER / "units", 16, seed=1),
        validation=_samples(TILES_FOLDER / "units", 8, seed=2),
        geometry=Geometry(TILES, TILE_SIDE, TILE_SIDE, scale=1.0, overlap=TILE_OVERLAP),
        config=TrainConfig(epochs=1, batch_size=8, warmup_steps=1),
    )
    return outcome.bundle_dir


def busy() -> None:
    """Train the aspect network on generated screens, again and again, until SIGTERM."""
    import tempfile

    from models_registry.ml.models.defectnet.training import TrainConfig
    from models_registry.ml.pipeline import train_bundle

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with tempfile.TemporaryDirectory(prefix="loupe-busy-training-") as folder:
        train, validation = (
            _samples(Path(folder) / "units", 48, seed=3),
            _samples(Path(folder) / "units", 8, seed=4),
        )
        print("training", flush=True)
        round_number = 0
        while True:
            round_number += 1
            train_bundle(
                out_dir=Path(folder) / f"bundle-{round_number}",
                classes=CLASSES,
                train=train,
                validation=validation,
                config=TrainConfig(epochs=50, batch_size=16),
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--tiles", action="store_true", help="train (once) and print the tiles model's bundle")
    what.add_argument("--busy", action="store_true", help="train until stopped")
    args = parser.parse_args()
    if args.tiles:
        print(tiles_bundle())
    else:
        busy()


if __name__ == "__main__":
    main()
