"""ONNX export of the serving graph."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models_registry.ml.layout import OUTPUT_NAMES
from models_registry.ml.network import serving_graph


def export_onnx(network: nn.Module, path: Path, input_size: int) -> Path:
    """Write the network's serving graph with a dynamic batch dimension."""
    wrapper = serving_graph(network)
    example = torch.zeros(1, 3, input_size, input_size)
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
