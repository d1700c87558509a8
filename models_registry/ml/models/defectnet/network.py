"""DefectNet: one pretrained backbone with an image head, a centre-point box head (stride 8) and a
mask head (stride 4); `ExportedDefectNet` is its served form (docs/model.md)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models_registry.ml.layout import NetworkConfig
from models_registry.ml.models.backbone import build_backbone


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DefectNet(nn.Module):
    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config.backbone, pretrained=config.pretrained)
        c2, c3, c4, c5 = self.backbone.channels
        n = config.neck_channels
        self.lateral3 = nn.Conv2d(c3, n, 1)
        self.lateral4 = nn.Conv2d(c4, n, 1)
        self.lateral5 = nn.Conv2d(c5, n, 1)
        self.smooth3 = _conv_bn_relu(n, n)
        self.detection_tower = _conv_bn_relu(n, n)
        self.heatmap = nn.Conv2d(n, config.num_classes, 1)
        self.box_size = nn.Conv2d(n, 2, 1)
        self.box_offset = nn.Conv2d(n, 2, 1)
        m = config.mask_channels
        self.lateral2 = nn.Conv2d(c2, m, 1)
        self.reduce3 = nn.Conv2d(n, m, 1)
        self.mask_tower = _conv_bn_relu(m, m)
        self.mask = nn.Conv2d(m, 1, 1)
        image_features = 2 * c5 + config.num_classes + 2
        self.image_head = nn.Sequential(
            nn.Linear(image_features, 128),
            nn.ReLU(inplace=True),
            nn.Dropout(0.2),
            nn.Linear(128, 1 + config.num_classes),
        )
        # CenterNet's prior: start with a low centre probability everywhere.
        nn.init.constant_(self.heatmap.bias, -2.19)
        nn.init.constant_(self.mask.bias, -2.19)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        f2, f3, f4, f5 = self.backbone(images)
        p5 = self.lateral5(f5)
        p4 = self.lateral4(f4) + F.interpolate(p5, size=f4.shape[-2:], mode="nearest")
        p3 = self.smooth3(self.lateral3(f3) + F.interpolate(p4, size=f3.shape[-2:], mode="nearest"))
        tower = self.detection_tower(p3)
        heatmap = self.heatmap(tower)
        mask_features = self.lateral2(f2) + F.interpolate(
            self.reduce3(p3), size=f2.shape[-2:], mode="nearest"
        )
        mask = self.mask(self.mask_tower(mask_features))
        pooled_mean = f5.mean(dim=(2, 3))
        pooled_max = f5.amax(dim=(2, 3))
        image_inputs = torch.cat(
            [pooled_mean, pooled_max, heatmap.amax(dim=(2, 3)), mask.amax(dim=(2, 3)), mask.mean(dim=(2, 3))],
            dim=1,
        )
        image_logits = self.image_head(image_inputs)
        return {
            "defect_logit": image_logits[:, 0],
            "class_logits": image_logits[:, 1:],
            "heatmap": heatmap,
            "box_size": self.box_size(tower),
            "box_offset": self.box_offset(tower),
            "mask": mask,
            "embedding": pooled_mean,
        }


class ExportedDefectNet(nn.Module):
    """Normalised image in, activated outputs with peaks marked out."""

    def __init__(self, network: DefectNet):
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.network(images)
        heat = torch.sigmoid(out["heatmap"])
        local_max = F.max_pool2d(heat, kernel_size=3, stride=1, padding=1)
        peaks = heat * (local_max == heat).to(heat.dtype)
        return (
            out["defect_logit"],
            out["class_logits"],
            peaks,
            out["box_size"],
            torch.sigmoid(out["box_offset"]),
            torch.sigmoid(out["mask"]),
            out["embedding"],
        )
