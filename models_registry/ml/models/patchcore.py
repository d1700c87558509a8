"""Cold start: a PatchCore-style model from defect-free images only (Roth et al. 2022), with the
same served outputs as `ExportedDefectNet` (docs/model.md)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models_registry.ml.layout import NetworkConfig
from models_registry.ml.models.backbone import build_backbone


class PatchFeatures(nn.Module):
    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.backbone = build_backbone(config.backbone, pretrained=config.pretrained)
        self.dimensions = self.backbone.channels[1] + self.backbone.channels[2]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, f3, f4, f5 = self.backbone(images)
        f4 = F.interpolate(f4, size=f3.shape[-2:], mode="bilinear", align_corners=False)
        patches = F.avg_pool2d(torch.cat([f3, f4], dim=1), kernel_size=3, stride=1, padding=1)
        return patches, f5.mean(dim=(2, 3))


class AnomalyNet(nn.Module):
    """Backbone + memory bank + normalisation, all in the state dict."""

    def __init__(self, config: NetworkConfig, memory_size: int = 1):
        super().__init__()
        self.config = config
        self.features = PatchFeatures(config)
        self.register_buffer("memory", torch.zeros(memory_size, self.features.dimensions))
        # image score -> logit: (score - image_threshold) / image_scale; same for pixels
        self.register_buffer("normalisation", torch.tensor([0.0, 1.0, 0.0, 1.0]))

    def patch_scores(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patches, embedding = self.features(images)
        b, d, h, w = patches.shape
        flat = patches.permute(0, 2, 3, 1).reshape(b, h * w, d)
        squared = (
            (flat**2).sum(-1, keepdim=True)
            - 2 * flat @ self.memory.t()
            + (self.memory**2).sum(-1)[None, None, :]
        )
        nearest = squared.amin(dim=-1).clamp(min=0).sqrt()
        return nearest.reshape(b, 1, h, w), embedding


class ExportedAnomalyNet(nn.Module):
    def __init__(self, network: AnomalyNet):
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        scores, embedding = self.network.patch_scores(images)
        image_threshold, image_scale, pixel_threshold, pixel_scale = self.network.normalisation
        defect_logit = (scores.amax(dim=(1, 2, 3)) - image_threshold) / image_scale
        pixel = torch.sigmoid((scores - pixel_threshold) / pixel_scale)
        mask = F.interpolate(pixel, scale_factor=2.0, mode="bilinear", align_corners=False)
        no_peaks = torch.zeros_like(scores)  # no centre peaks: regions come from the mask
        no_boxes = torch.cat([no_peaks, no_peaks], dim=1)
        return (
            defect_logit,
            torch.zeros_like(defect_logit)[:, None],
            no_peaks,
            no_boxes,
            no_boxes,
            mask,
            embedding,
        )


def greedy_coreset(features: torch.Tensor, size: int, seed: int = 0, projection: int = 128) -> torch.Tensor:
    """Indices of a k-centre coreset (greedy farthest point), in a random projection."""
    if len(features) <= size:
        return torch.arange(len(features))
    generator = torch.Generator().manual_seed(seed)
    projected = features
    if features.shape[1] > projection:
        matrix = torch.randn(features.shape[1], projection, generator=generator) / projection**0.5
        projected = features @ matrix
    chosen = [int(torch.randint(len(features), (1,), generator=generator))]
    distance = ((projected - projected[chosen[0]]) ** 2).sum(1)
    for _ in range(size - 1):
        index = int(torch.argmax(distance))
        chosen.append(index)
        distance = torch.minimum(distance, ((projected - projected[index]) ** 2).sum(1))
    return torch.tensor(chosen)


def _scores_of(network: AnomalyNet, batches: Sequence[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    image_scores, pixel_scores = [], []
    with torch.inference_mode():
        for batch in batches:
            scores, _ = network.patch_scores(batch)
            image_scores.append(scores.amax(dim=(1, 2, 3)).numpy())
            pixel_scores.append(scores.reshape(-1).numpy())
    return np.concatenate(image_scores), np.concatenate(pixel_scores)


CPU = torch.device("cpu")


def fit_anomaly_network(
    config: NetworkConfig,
    train_batches: Sequence[torch.Tensor],
    validation_batches: Sequence[torch.Tensor],
    *,
    memory_size: int = 2048,
    candidate_limit: int = 40_000,
    seed: int = 0,
    device: torch.device = CPU,
) -> AnomalyNet:
    """Build the memory from normal training images; normalise on normal validation images.
    The training images' features are computed on `device` (the CPU by default), the rest on the CPU."""
    network = AnomalyNet(config).eval()
    with torch.inference_mode():
        network.features.to(device)
        collected = []
        for batch in train_batches:
            patches, _ = network.features(batch.to(device))
            collected.append(patches.permute(0, 2, 3, 1).reshape(-1, patches.shape[1]).cpu())
        network.features.cpu()
        features = torch.cat(collected)
    generator = torch.Generator().manual_seed(seed)
    if len(features) > candidate_limit:
        features = features[torch.randperm(len(features), generator=generator)[:candidate_limit]]
    memory = features[greedy_coreset(features, memory_size, seed=seed)]
    network.memory = memory.clone()
    reference = validation_batches or train_batches
    image_scores, pixel_scores = _scores_of(network, reference)
    image_threshold = float(np.quantile(image_scores, 0.99))
    image_scale = float(max(image_scores.std(), 1e-3))
    pixel_threshold = float(np.quantile(pixel_scores, 0.999))
    pixel_scale = float(max(pixel_scores.std(), 1e-3))
    network.normalisation = torch.tensor([image_threshold, image_scale, pixel_threshold, pixel_scale])
    return network
