"""The served graph: either model behind the bundle's own input normalisation (uint8 images in,
`layout.OUTPUT_NAMES` out), and the trained weights a bundle keeps of it."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models_registry.ml.layout import NetworkConfig
from models_registry.ml.models.defectnet.network import DefectNet, ExportedDefectNet
from models_registry.ml.models.patchcore import AnomalyNet, ExportedAnomalyNet
from models_registry.ml.preprocessing import PreprocessConfig, scale_and_shift
from models_registry.ml.serving.bundle import WEIGHTS_FILE


def save_weights(directory: Path, network: nn.Module) -> None:
    torch.save(network.state_dict(), Path(directory) / WEIGHTS_FILE)


def load_network(directory: Path, network_config: NetworkConfig) -> nn.Module:
    """The trained network from a bundle folder (no ImageNet weights needed: they are in it)."""
    config = NetworkConfig(**{**network_config.__dict__, "pretrained": False})
    state = torch.load(Path(directory) / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    if config.kind == "anomaly":
        network = AnomalyNet(config, memory_size=state["memory"].shape[0])
    else:
        network = DefectNet(config)
    network.load_state_dict(state)
    return network.eval()


class ImageInput(nn.Module):
    """uint8 N x H x W x 3 images -> the backbone's normalised float N x 3 x H x W.

    Inside the serving graph, so a bundle carries its own normalisation and serving cannot
    drift from training (which applies `preprocessing.normalise`, the same arithmetic).
    """

    def __init__(self, preprocess: PreprocessConfig):
        super().__init__()
        scale, shift = scale_and_shift(preprocess)
        self.register_buffer("scale", torch.from_numpy(scale).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", torch.from_numpy(shift).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.permute(0, 3, 1, 2).to(torch.float32) * self.scale - self.shift


class ServingGraph(nn.Module):
    def __init__(self, image_input: ImageInput, graph: nn.Module):
        super().__init__()
        self.image_input = image_input
        self.graph = graph

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.graph(self.image_input(images))


def serving_graph(network: nn.Module, preprocess: PreprocessConfig) -> nn.Module:
    """uint8 images in, `layout.OUTPUT_NAMES` out: what ONNX Runtime and the torch predictor run."""
    graph = ExportedAnomalyNet(network) if isinstance(network, AnomalyNet) else ExportedDefectNet(network)
    return ServingGraph(ImageInput(preprocess), graph).eval()
