"""Train, export, calibrate, certify and evaluate one model: the whole recipe, no Django.

`train_bundle` writes a complete bundle folder; `evaluate_bundle` scores a bundle on labelled
samples through the same ONNX graph that serves the line, so evaluation measures what runs.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models_registry.ml.calibration import (
    DEFAULT_ALPHAS,
    Calibration,
    fit_binary_platt,
    fit_binary_temperature,
    fit_softmax_temperature,
    risk_control_table,
)
from models_registry.ml.data import PreparedFrame, ViewSampler, measure_samples, prepare_frames
from models_registry.ml.evaluation import (
    ImageOutcome,
    box_iou,
    image_metrics,
    mean_average_precision,
    per_class_metrics,
    pixel_auroc,
)
from models_registry.ml.geometry import TILES, Geometry, GeometryChoice, GeometryRequest
from models_registry.ml.layout import NetworkConfig
from models_registry.ml.models.backbone import NORMALISATION
from models_registry.ml.models.defectnet.training import EpochReport, StepCallback, TrainConfig
from models_registry.ml.preprocessing import PreprocessConfig, normalise
from models_registry.ml.serving import bundle as bundle_files
from models_registry.ml.serving.postprocessing import FrameOutputs, image_decisions
from models_registry.ml.serving.predictor import (
    OnnxPredictor,
    Predictor,
    content_statistics,
    summarise_embedding,
)
from models_registry.ml.types import NO_DEFECT, Sample


def collect_outputs(
    predictor: Predictor, frames: Sequence[PreparedFrame], chunk: int = 8
) -> list[FrameOutputs]:
    """The served graph's merged outputs for each frame, through the predictor's own views."""
    outputs: list[FrameOutputs] = []
    for start in range(0, len(frames), chunk):
        outputs += predictor.outputs([frame.pixels for frame in frames[start : start + chunk]])
    return outputs


def _logits(raw: Sequence[FrameOutputs], classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    defect = np.array([o.defect_logit for o in raw], np.float64)
    class_logits = np.array([o.class_logits for o in raw], np.float64).reshape(len(raw), -1)
    if not len(raw):
        class_logits = np.zeros((0, len(classes)))
    return defect, class_logits


def _truth_classes(item: PreparedFrame, classes: Sequence[str]) -> tuple[str, ...]:
    if item.class_target is None:
        return ()
    return tuple(classes[i] for i in np.flatnonzero(item.class_target))


def outcomes_for(
    items: Sequence[PreparedFrame],
    raw: Sequence[FrameOutputs],
    classes: Sequence[str],
    calibration: Calibration,
) -> list[ImageOutcome]:
    defect_logits, class_logits = _logits(raw, classes)
    decisions = image_decisions(defect_logits, class_logits, classes=classes, calibration=calibration)
    return [
        ImageOutcome(
            defect_probability=d.defect_probability,
            label=d.label,
            confidence=d.confidence,
            true_defective=None if item.defective < 0 else bool(item.defective),
            true_classes=_truth_classes(item, classes),
        )
        for item, d in zip(items, decisions, strict=True)
    ]


def best_region_threshold(items: Sequence[PreparedFrame], raw: Sequence[FrameOutputs]) -> float:
    """The centre score that best balances missed and spurious regions (F1) on validation data."""
    candidates = np.linspace(0.1, 0.6, 11)
    best, best_f1 = 0.3, -1.0
    for threshold in candidates:
        hits = predicted = truths = 0
        for item, found in zip(items, raw, strict=True):
            kept = [d for d in found.detections if d.score >= threshold]
            predicted += len(kept)
            truths += len(item.boxes)
            if kept and len(item.boxes):
                overlaps = box_iou(np.array([[d.x1, d.y1, d.x2, d.y2] for d in kept]), item.boxes)
                hits += int((overlaps.max(axis=0) >= 0.3).sum())
        if truths == 0:
            return best
        precision = hits / predicted if predicted else 0.0
        recall = hits / truths
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if f1 > best_f1:
            best, best_f1 = float(threshold), f1
    return best


def calibrate(
    items: Sequence[PreparedFrame], raw: Sequence[FrameOutputs], classes: Sequence[str], geometry: Geometry
) -> Calibration:
    defect_logits, class_logits = _logits(raw, classes)
    known = np.array([i.defective >= 0 for i in items], bool)
    labels = np.array([i.defective for i in items])
    if geometry.kind == TILES:
        defect_t, defect_bias = fit_binary_platt(defect_logits[known], labels[known])
    else:
        defect_t, defect_bias = fit_binary_temperature(defect_logits[known], labels[known]), 0.0
    with_class = [k for k, i in enumerate(items) if i.class_target is not None]
    class_t = fit_softmax_temperature(
        class_logits[with_class],
        np.array([int(np.argmax(items[k].class_target)) for k in with_class], int),
    )
    return Calibration(defect_temperature=defect_t, class_temperature=class_t, defect_bias=defect_bias)


def evaluate_items(
    predictor: Predictor, items: Sequence[PreparedFrame], raw: Sequence[FrameOutputs] | None = None
) -> dict:
    """Every metric the issue asks for, on prepared (labelled) frames.

    `raw` may hold the graph's outputs for `items` already (they do not depend on the
    calibration or thresholds in `predictor.config`, which this applies).
    """
    config = predictor.config
    raw = raw if raw is not None else collect_outputs(predictor, items)
    outcomes = outcomes_for(items, raw, config.classes, config.calibration)
    thresholds = {alpha: entry.get("threshold") for alpha, entry in config.risk_control.items()}
    metrics = image_metrics(outcomes, thresholds)
    with_boxes = [k for k, item in enumerate(items) if item.has_geometry]
    box_map, per_class_ap = None, {}
    if any(len(items[k].boxes) for k in with_boxes):
        box_map, per_class_ap = mean_average_precision(
            [raw[k].detections for k in with_boxes],
            [(items[k].boxes, items[k].box_labels) for k in with_boxes],
            len(config.classes),
        )
    metrics["box_map50"] = box_map
    with_masks = [k for k, item in enumerate(items) if item.mask is not None and item.mask_weight >= 1.0]
    if with_masks and any(items[k].mask.any() for k in with_masks):
        metrics["pixel_auroc"] = pixel_auroc(
            [raw[k].mask for k in with_masks], [items[k].mask for k in with_masks]
        )
    else:
        metrics["pixel_auroc"] = None
    metrics["per_class"] = per_class_metrics(outcomes, config.classes, per_class_ap)
    metrics["curves"] = curves(outcomes)
    return metrics


def curves(outcomes: Sequence[ImageOutcome]) -> dict:
    """Precision-recall (defect vs good) and risk-coverage points, for plots."""
    known = [o for o in outcomes if o.true_defective is not None]
    result: dict[str, list] = {"precision_recall": [], "risk_coverage": []}
    if not known:
        return result
    scores = np.array([o.defect_probability for o in known])
    truth = np.array([o.true_defective for o in known], bool)
    order = np.argsort(-scores)
    true_positives = np.cumsum(truth[order])
    if truth.any():
        precision = true_positives / np.arange(1, len(order) + 1)
        recall = true_positives / truth.sum()
        result["precision_recall"] = [[float(r), float(p)] for r, p in zip(recall, precision, strict=True)]
    confidence = np.array([o.confidence for o in known])
    wrong = np.array([not o.correct for o in known])
    order = np.argsort(-confidence)
    errors = np.cumsum(wrong[order])
    counts = np.arange(1, len(order) + 1)
    result["risk_coverage"] = [
        [float(c / len(order)), float(e / c)] for c, e in zip(counts, errors, strict=True)
    ]
    return result


def reference_arrays(
    items: Sequence[PreparedFrame], raw: Sequence[FrameOutputs], outcomes: Sequence[ImageOutcome]
) -> dict[str, np.ndarray]:
    """The drift reference of a model: what it saw and said on its validation data, summarised
    exactly as serving summarises each live unit (`summarise_embedding`), and the frames' sizes
    (the frame check's lower limit)."""
    summaries = [
        summarise_embedding(raw[k].embedding, content_statistics(item.pixels)) for k, item in enumerate(items)
    ]
    known = [o for o in outcomes if o.true_defective is not None]
    colours = np.array([s.color for s in summaries], np.float64).reshape(-1, 3)
    return {
        "defect_probability": np.array([o.defect_probability for o in outcomes]),
        "confidence": np.array([o.confidence for o in outcomes]),
        "correct": np.array([o.correct for o in outcomes], bool),
        "known": np.array([o.true_defective is not None for o in outcomes], bool),
        "verdict_correct": np.array([(o.label != NO_DEFECT) == o.true_defective for o in known], bool),
        "embedding": np.array([s.vector for s in summaries], np.float32).reshape(len(summaries), -1),
        "brightness": np.array([s.brightness for s in summaries]),
        "contrast": np.array([s.contrast for s in summaries]),
        "sharpness": np.array([s.sharpness for s in summaries]),
        "red": colours[:, 0],
        "green": colours[:, 1],
        "blue": colours[:, 2],
        "width": np.array([item.original_size[0] for item in items], np.int64),
        "height": np.array([item.original_size[1] for item in items], np.int64),
    }


@dataclass(frozen=True)
class TrainOutcome:
    bundle_dir: Path
    config: bundle_files.BundleConfig
    validation_metrics: dict
    test_metrics: dict | None
    seconds: dict[str, float]


def train_bundle(
    *,
    out_dir: Path,
    classes: Sequence[str],
    train: Sequence[Sample],
    validation: Sequence[Sample],
    test: Sequence[Sample] = (),
    backbone: str = "efficientnet_lite0",
    pretrained: bool = True,
    geometry: Geometry | GeometryChoice | GeometryRequest | None = None,
    config: TrainConfig | None = None,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    threads: int | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    on_step: StepCallback | None = None,
    device: str = "cpu",
) -> TrainOutcome:
    """Train on `train`, calibrate and certify on `validation`, report on `test`, at `geometry`
    (or what a `GeometryRequest` leaves open chosen from the training data: `choose_geometry`).
    The network trains on the torch `device` (`ml.device.torch_device`: an unavailable GPU is an
    error here, before any work); calibration and evaluation run the exported graph on the CPU."""
    import torch

    from models_registry.ml.device import torch_device
    from models_registry.ml.models.defectnet.training import train_network
    from models_registry.ml.serving.export import export_onnx
    from models_registry.ml.serving.graph import save_weights

    config = config or TrainConfig()
    training_device = torch_device(device)
    if threads:
        torch.set_num_threads(threads)
    seconds: dict[str, float] = {}
    clock = time.monotonic()
    choice = geometry_for(geometry, train)
    geometry = choice.geometry
    mean, std = NORMALISATION[backbone]
    preprocess = PreprocessConfig(mean=mean, std=std)
    network_config = NetworkConfig(backbone=backbone, num_classes=max(1, len(classes)), pretrained=pretrained)
    classes = tuple(classes) or ("defect",)
    train_items = prepare_frames(train, classes, geometry)
    validation_items = prepare_frames(validation, classes, geometry)
    seconds["load"] = time.monotonic() - clock

    clock = time.monotonic()
    if any(item.defective == 1 for item in train_items):
        network = train_network(
            train_items,
            validation_items,
            geometry=geometry,
            network_config=network_config,
            preprocess=preprocess,
            config=config,
            on_epoch=on_epoch,
            on_step=on_step,
            device=training_device,
        )
    else:
        network, network_config, classes = _fit_cold_start(
            train_items,
            validation_items,
            geometry,
            backbone,
            pretrained,
            preprocess,
            config.seed,
            training_device,
        )
    seconds["train"] = time.monotonic() - clock

    clock = time.monotonic()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_weights(out_dir, network)
    export_onnx(network, out_dir / bundle_files.ONNX_FILE, preprocess, geometry)
    training = {
        **config.as_dict(),
        "train_size": len(train_items),
        "validation_size": len(validation_items),
        "geometry_reason": choice.reason,
    }
    draft = bundle_files.BundleConfig(
        classes=classes,
        network=network_config,
        geometry=geometry,
        preprocess=preprocess,
        calibration=Calibration(),
        training=training,
    )
    bundle_files.write_config(out_dir, draft)
    predictor = OnnxPredictor(out_dir, threads=threads)
    raw = collect_outputs(predictor, validation_items)
    calibration = calibrate(validation_items, raw, classes, geometry)
    outcomes = outcomes_for(validation_items, raw, classes, calibration)
    known = [o for o in outcomes if o.true_defective is not None]
    risk_control = risk_control_table([o.confidence for o in known], [o.correct for o in known], alphas)
    if not any(o.true_defective for o in known):
        reason = "no defective units in the validation data: misses cannot be measured; nothing certified"
        risk_control = {
            alpha: {**entry, "threshold": None, "coverage": 0.0, "certified": False, "reason": reason}
            for alpha, entry in risk_control.items()
        }
    final = dataclasses.replace(
        draft,
        calibration=calibration,
        region_threshold=best_region_threshold(validation_items, raw),
        risk_control=risk_control,
    )
    bundle_files.write_config(out_dir, final)
    bundle_files.save_reference(out_dir, **reference_arrays(validation_items, raw, outcomes))
    seconds["calibrate"] = time.monotonic() - clock

    predictor = OnnxPredictor(out_dir, threads=threads)  # the final config: calibration, thresholds
    validation_metrics = evaluate_items(predictor, validation_items, raw) if validation_items else {}
    del train_items, validation_items  # a tiled set at the camera's resolution is large
    clock = time.monotonic()
    test_metrics = evaluate_samples(predictor, test) if test else None
    seconds["evaluate"] = time.monotonic() - clock
    final = dataclasses.replace(final, metrics=_headline(validation_metrics))
    bundle_files.write_config(out_dir, final)
    return TrainOutcome(out_dir, final, validation_metrics, test_metrics, seconds)


def geometry_for(
    geometry: Geometry | GeometryChoice | GeometryRequest | None, samples: Sequence[Sample]
) -> GeometryChoice:
    """The geometry to train on `samples` with, and why: one given as it is, or what a request
    (None: all of it) leaves open chosen from the samples, measuring them if needed."""
    if isinstance(geometry, GeometryChoice):
        return geometry
    if isinstance(geometry, Geometry):
        return GeometryChoice(geometry, "given")
    request = geometry or GeometryRequest()
    return request.resolve(*(measure_samples(samples) if request.needs_data else ([], [])))


def _fit_cold_start(
    train_items: Sequence[PreparedFrame],
    validation_items: Sequence[PreparedFrame],
    geometry: Geometry,
    backbone: str,
    pretrained: bool,
    preprocess: PreprocessConfig,
    seed: int,
    device,
):
    """No defective example yet: a PatchCore anomaly model from the normal images."""
    import torch

    from models_registry.ml.models.patchcore import fit_anomaly_network

    def batches(items: Sequence[PreparedFrame]) -> list:
        normal = [item for item in items if item.defective == 0]
        views = ViewSampler(normal, geometry, 1).epoch(np.random.default_rng(seed))
        return [
            torch.from_numpy(normalise(np.stack([v.pixels for v in views[k : k + 16]]), preprocess))
            for k in range(0, len(views), 16)
        ]

    network_config = NetworkConfig(backbone=backbone, num_classes=1, pretrained=pretrained, kind="anomaly")
    network = fit_anomaly_network(
        network_config, batches(train_items), batches(validation_items), seed=seed, device=device
    )
    return network, network_config, ("anomaly",)


def _headline(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in ("curves", "per_class")}


def evaluate_samples(predictor: Predictor, samples: Sequence[Sample], chunk: int = 200) -> dict:
    """`evaluate_items` over samples decoded a chunk at a time (a large test split of frames at
    the camera's resolution need not be in memory at once)."""
    items: list[PreparedFrame] = []
    raw: list[FrameOutputs] = []
    for start in range(0, len(samples), chunk):
        prepared = prepare_frames(
            samples[start : start + chunk], predictor.config.classes, predictor.geometry
        )
        raw += collect_outputs(predictor, prepared)
        items += [_without_pixels(item) for item in prepared]
    return evaluate_items(predictor, items, raw)


def _without_pixels(item: PreparedFrame) -> PreparedFrame:
    return dataclasses.replace(item, pixels=np.zeros((0, 0, 3), np.uint8))


def evaluate_bundle(bundle_dir: Path, samples: Sequence[Sample], *, threads: int | None = None) -> dict:
    return evaluate_samples(OnnxPredictor(bundle_dir, threads=threads), samples)
