"""Small configurations and measurements shared by the synthetic generator's tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models_registry.ml.synthetic.config import SyntheticConfig

TINY = {"width": 160, "height": 90}


def tiny(**overrides) -> SyntheticConfig:
    return SyntheticConfig(**{**TINY, **overrides})


def pixels(unit) -> np.ndarray:
    return np.asarray(unit.image, dtype=np.float64)


def laplacian_variance(gray: np.ndarray) -> float:
    laplacian = 4 * gray[1:-1, 1:-1] - gray[:-2, 1:-1] - gray[2:, 1:-1] - gray[1:-1, :-2] - gray[1:-1, 2:]
    return float(laplacian.var())


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
