"""ONNX export of the serving graph."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models_registry.ml.layout import OUTPUT_NAMES
from models_registry.ml.network import serving_graph
from models_registry.ml.preprocessing import PreprocessConfig


def export_onnx(network: nn.Module, path: Path, preprocess: PreprocessConfig) -> Path:
    """Write the serving graph (uint8 N x S x S x 3 in) with a dynamic batch dimension."""
    wrapper = serving_graph(network, preprocess)
    size = preprocess.input_size
    example = torch.zeros(1, size, size, 3, dtype=torch.uint8)
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
