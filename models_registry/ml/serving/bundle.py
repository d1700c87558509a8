"""A model bundle: everything needed to serve or re-evaluate one trained model, in one folder
(config JSON, weights, ONNX graph, drift reference; docs/model.md)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from models_registry.ml.calibration import Calibration
from models_registry.ml.geometry import Geometry
from models_registry.ml.layout import NetworkConfig
from models_registry.ml.preprocessing import PreprocessConfig

# 2: the ONNX graph takes uint8 NHWC images and normalises inside; 3: the geometry is stored
FORMAT_VERSION = 3
READABLE_FORMATS = (2, 3)
CONFIG_FILE = "loupe-model.json"
WEIGHTS_FILE = "weights.pt"
ONNX_FILE = "model.onnx"
REFERENCE_FILE = "reference.npz"


@dataclass(frozen=True)
class BundleConfig:
    classes: tuple[str, ...]
    network: NetworkConfig
    geometry: Geometry
    preprocess: PreprocessConfig
    calibration: Calibration
    region_threshold: float = 0.3
    risk_control: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "classes": list(self.classes),
            "network": asdict(self.network),
            "geometry": self.geometry.as_dict(),
            "preprocess": self.preprocess.as_dict(),
            "calibration": self.calibration.as_dict(),
            "region_threshold": self.region_threshold,
            "risk_control": self.risk_control,
            "training": self.training,
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, data: dict) -> BundleConfig:
        if data.get("format_version") not in READABLE_FORMATS:
            raise ValueError(f"unsupported model bundle format {data.get('format_version')!r}")
        if "geometry" in data:
            geometry = Geometry.from_dict(data["geometry"])
        else:  # format 2: a square input, the frame squashed into it
            geometry = Geometry.square(int(data["preprocess"]["input_size"]))
        return cls(
            classes=tuple(data["classes"]),
            network=NetworkConfig(**data["network"]),
            geometry=geometry,
            preprocess=PreprocessConfig.from_dict(data["preprocess"]),
            calibration=Calibration.from_dict(data["calibration"]),
            region_threshold=float(data["region_threshold"]),
            risk_control=data.get("risk_control", {}),
            training=data.get("training", {}),
            metrics=data.get("metrics", {}),
        )


def write_config(directory: Path, config: BundleConfig) -> None:
    (directory / CONFIG_FILE).write_text(json.dumps(config.as_dict(), indent=2, sort_keys=True))


def read_config(directory: Path) -> BundleConfig:
    path = Path(directory) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{directory} is not a Loupe model bundle (no {CONFIG_FILE})")
    return BundleConfig.from_dict(json.loads(path.read_text()))


def save_reference(directory: Path, **arrays: np.ndarray) -> None:
    np.savez_compressed(directory / REFERENCE_FILE, **arrays)


def load_reference(directory: Path) -> dict[str, np.ndarray]:
    with np.load(Path(directory) / REFERENCE_FILE) as data:
        return {key: data[key] for key in data.files}
