"""The training loop: plain torch, a few minutes for a thousand images on CPU; on a GPU with `device`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from models_registry.ml.data import PreparedFrame, PreparedSample, ViewSampler, augment
from models_registry.ml.geometry import Geometry
from models_registry.ml.layout import NetworkConfig
from models_registry.ml.models.defectnet.network import DefectNet
from models_registry.ml.models.defectnet.targets import BatchTargets, build_targets
from models_registry.ml.preprocessing import PreprocessConfig, normalise


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 12
    batch_size: int = 16
    learning_rate: float = 2e-3
    backbone_learning_rate: float = 5e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 30
    seed: int = 0
    freeze_stem: bool = True
    # Tiled geometries: the side of the training crops, at most the served tile's (measured on two
    # cores: a 256 px step costs 0.63 of a 320 px one).
    tile_crop: int = 256

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    epochs: int
    step: int
    steps: int
    train_loss: float
    losses: dict[str, float]
    validation_loss: float | None
    seconds: float
    eta_seconds: float


ProgressCallback = Callable[[EpochReport], None]
StepCallback = Callable[[int, int, float], None]


def focal_heatmap_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, over the samples whose geometry is known."""
    prediction = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1).float()
    negative = 1 - positive
    positive_loss = torch.log(prediction) * (1 - prediction) ** 2 * positive
    negative_loss = torch.log(1 - prediction) * prediction**2 * (1 - target) ** 4 * negative
    per_sample = -(positive_loss + negative_loss).sum(dim=(1, 2, 3)) * weight
    return per_sample.sum() / positive.sum().clamp(min=1.0)


def losses_for(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    losses: dict[str, torch.Tensor] = {}
    known = targets["defective"] >= 0
    if known.any():
        losses["defect"] = F.binary_cross_entropy_with_logits(
            outputs["defect_logit"][known], targets["defective"][known]
        )
    has_class = targets["class_weight"] > 0
    if has_class.any() and outputs["class_logits"].shape[1] > 1:
        log_probs = F.log_softmax(outputs["class_logits"][has_class], dim=1)
        losses["class"] = -(targets["class_target"][has_class] * log_probs).sum(dim=1).mean()
    geometry = targets["geometry_weight"]
    if geometry.sum() > 0:
        losses["heatmap"] = focal_heatmap_loss(outputs["heatmap"], targets["heatmap"], geometry)
        centres = targets["centre_mask"].unsqueeze(1)
        count = centres.sum().clamp(min=1.0)
        losses["size"] = (
            F.l1_loss(outputs["box_size"], targets["size"], reduction="none") * centres
        ).sum() / count
        offset = torch.sigmoid(outputs["box_offset"])
        losses["offset"] = (F.l1_loss(offset, targets["offset"], reduction="none") * centres).sum() / count
    mask_weight = targets["mask_weight"]
    if mask_weight.sum() > 0:
        logits, target = outputs["mask"], targets["mask"]
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=(1, 2, 3))
        probability = torch.sigmoid(logits)
        intersection = (probability * target).sum(dim=(1, 2, 3))
        dice = 1 - (2 * intersection + 1) / (probability.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1)
        losses["mask"] = ((bce * 5 + dice) * mask_weight).sum() / mask_weight.sum().clamp(min=1.0)
    return losses


def to_tensors(targets: BatchTargets, preprocess: PreprocessConfig) -> dict[str, torch.Tensor]:
    return {
        "images": torch.from_numpy(normalise(targets.images, preprocess)),
        "defective": torch.from_numpy(targets.defective),
        "class_target": torch.from_numpy(targets.class_target),
        "class_weight": torch.from_numpy(targets.class_weight),
        "heatmap": torch.from_numpy(targets.heatmap),
        "geometry_weight": torch.from_numpy(targets.geometry_weight),
        "size": torch.from_numpy(targets.size),
        "offset": torch.from_numpy(targets.offset),
        "centre_mask": torch.from_numpy(targets.centre_mask),
        "mask": torch.from_numpy(targets.mask),
        "mask_weight": torch.from_numpy(targets.mask_weight),
    }


def _batches(items: Sequence[PreparedSample], batch_size: int, rng: np.random.Generator | None):
    order = np.arange(len(items)) if rng is None else rng.permutation(len(items))
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        if rng is not None and len(chosen) < 2:
            continue  # batch norm needs two samples
        yield [items[i] for i in chosen]


CPU = torch.device("cpu")


def _tensors_on(
    device: torch.device, targets: BatchTargets, preprocess: PreprocessConfig
) -> dict[str, torch.Tensor]:
    return {name: tensor.to(device) for name, tensor in to_tensors(targets, preprocess).items()}


def validation_loss(
    model: DefectNet,
    items: Sequence[PreparedSample],
    num_classes: int,
    preprocess: PreprocessConfig,
    device: torch.device = CPU,
) -> float:
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for batch in _batches(items, 32, None):
            tensors = _tensors_on(device, build_targets(batch, num_classes), preprocess)
            outputs = model(tensors["images"])
            total += float(sum(losses_for(outputs, tensors).values())) * len(batch)
            count += len(batch)
    return total / max(count, 1)


def train_network(
    train_frames: Sequence[PreparedFrame],
    validation_frames: Sequence[PreparedFrame],
    *,
    geometry: Geometry,
    network_config: NetworkConfig,
    preprocess: PreprocessConfig,
    config: TrainConfig,
    on_epoch: ProgressCallback | None = None,
    on_step: StepCallback | None = None,
    device: torch.device = CPU,
) -> DefectNet:
    """Train a DefectNet on `device` (the CPU by default); the network comes back on the CPU."""
    if len(train_frames) < 2:
        raise ValueError(f"training needs at least 2 labelled images, got {len(train_frames)}")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    sampler = ViewSampler(train_frames, geometry, network_config.num_classes, crop=config.tile_crop)
    # The same validation views every epoch, so its loss curve compares like with like.
    validation_items = ViewSampler(
        validation_frames, geometry, network_config.num_classes, crop=config.tile_crop
    ).epoch(np.random.default_rng(config.seed + 1))
    model = DefectNet(network_config).to(device)
    if config.freeze_stem:
        model.backbone.freeze_stem()
    backbone_parameters = [p for p in model.backbone.parameters() if p.requires_grad]
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    head_parameters = [p for p in model.parameters() if id(p) not in backbone_ids]
    optimizer = torch.optim.AdamW(
        [
            {"params": backbone_parameters, "lr": config.backbone_learning_rate},
            {"params": head_parameters, "lr": config.learning_rate},
        ],
        weight_decay=config.weight_decay,
    )
    full, rest = divmod(len(sampler), config.batch_size)
    steps_per_epoch = max(1, full + (1 if rest >= 2 else 0))
    total_steps = steps_per_epoch * config.epochs
    base_rates = [group["lr"] for group in optimizer.param_groups]

    def set_rate(step: int) -> None:
        warmup = min(1.0, (step + 1) / max(1, config.warmup_steps))
        cosine = 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
        for group, base in zip(optimizer.param_groups, base_rates, strict=True):
            group["lr"] = base * warmup * (0.02 + 0.98 * cosine)

    started = time.monotonic()
    step = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        if config.freeze_stem:
            for module in model.backbone.frozen_modules():
                module.eval()  # frozen layers keep their ImageNet batch statistics
        epoch_started = time.monotonic()
        sums: dict[str, float] = {}
        batches = 0
        for batch in _batches(sampler.epoch(rng), config.batch_size, rng):
            augmented = [augment(item, rng) for item in batch]
            tensors = _tensors_on(device, build_targets(augmented, network_config.num_classes), preprocess)
            set_rate(step)
            outputs = model(tensors["images"])
            losses = losses_for(outputs, tensors)
            loss = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            step += 1
            batches += 1
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
            if on_step is not None:
                on_step(step, total_steps, float(loss.detach()))
        elapsed = time.monotonic() - started
        averages = {name: value / max(batches, 1) for name, value in sums.items()}
        validation = (
            validation_loss(model, validation_items, network_config.num_classes, preprocess, device)
            if validation_items
            else None
        )
        if on_epoch is not None:
            on_epoch(
                EpochReport(
                    epoch=epoch,
                    epochs=config.epochs,
                    step=step,
                    steps=total_steps,
                    train_loss=sum(averages.values()),
                    losses=averages,
                    validation_loss=validation,
                    seconds=time.monotonic() - epoch_started,
                    eta_seconds=elapsed / epoch * (config.epochs - epoch),
                )
            )
    model.eval()
    return model.cpu()
