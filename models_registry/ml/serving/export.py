"""ONNX export of the serving graph."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models_registry.ml.geometry import Geometry
from models_registry.ml.layout import OUTPUT_NAMES
from models_registry.ml.preprocessing import PreprocessConfig
from models_registry.ml.serving.graph import serving_graph


def export_onnx(network: nn.Module, path: Path, preprocess: PreprocessConfig, geometry: Geometry) -> Path:
    """Write the serving graph (uint8 N x H x W x 3 in, the geometry's view size) with a dynamic
    batch dimension: a frame's tiles run as one batch."""
    wrapper = serving_graph(network, preprocess)
    example = torch.zeros(1, geometry.height, geometry.width, 3, dtype=torch.uint8)
    names = list(OUTPUT_NAMES)
    with torch.inference_mode():
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            input_names=["images"],
            output_names=names,
            dynamic_axes={"images": {0: "batch"}, **{name: {0: "batch"} for name in names}},
            opset_version=17,
            dynamo=False,
        )
    return path
