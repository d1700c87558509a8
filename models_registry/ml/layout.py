"""The network's shape as serving sees it: no torch import, so the web process stays light."""

from __future__ import annotations

from dataclasses import dataclass

DETECTION_STRIDE = 8
MASK_STRIDE = 4
OUTPUT_NAMES = ("defect_logit", "class_logits", "peaks", "box_size", "box_offset", "mask", "embedding")


@dataclass(frozen=True)
class NetworkConfig:
    backbone: str = "efficientnet_lite0"
    num_classes: int = 1
    neck_channels: int = 64
    mask_channels: int = 32
    pretrained: bool = True
    # "supervised" (DefectNet) or "anomaly" (cold start from defect-free images only)
    kind: str = "supervised"
