"""Serving: `Predictor.predict(image) -> Prediction`.

`OnnxPredictor` runs the exported graph on ONNX Runtime (2-4x faster than eager torch on a
small CPU); `TorchPredictor` runs the same network in torch, for agreement tests and for
machines where the ONNX graph is not wanted. Both share decoding and post-processing.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models_registry.ml.bundle import ONNX_FILE, BundleConfig, read_config
from models_registry.ml.layout import OUTPUT_NAMES
from models_registry.ml.postprocess import image_decisions, regions_from_mask, regions_from_outputs
from models_registry.ml.preprocessing import ImageSource, LoadedImage, load_image
from models_registry.ml.types import EmbeddingSummary, Prediction, image_statistics

EMBEDDING_SUMMARY_SIZE = 32


class Predictor:
    """Loads a bundle once; thread-safe for concurrent `predict` calls."""

    backend = "base"

    def __init__(self, bundle_dir: str | Path, *, model_version: str = "", threads: int | None = None):
        self.bundle_dir = Path(bundle_dir)
        self.config: BundleConfig = read_config(self.bundle_dir)
        self.model_version = model_version or self.bundle_dir.name
        self.threads = threads
        self.input_size = self.config.preprocess.input_size
        self.is_anomaly_model = self.config.network.kind == "anomaly"

    # -- subclasses -----------------------------------------------------------------------
    def forward(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 N x S x S x 3 images (as `load` gives them) in, the graph's outputs by name out."""
        raise NotImplementedError

    # -- public ---------------------------------------------------------------------------
    def load(self, image: ImageSource) -> LoadedImage:
        return load_image(image, self.input_size)

    def predict(self, image: ImageSource) -> Prediction:
        started = time.perf_counter()
        loaded = self.load(image)
        batch = loaded.pixels[None]
        prepared = time.perf_counter()
        outputs = self.forward(batch)
        forwarded = time.perf_counter()
        prediction = self.to_predictions([loaded], outputs)[0]
        finished = time.perf_counter()
        timings = {
            "preprocess": (prepared - started) * 1000,
            "forward": (forwarded - prepared) * 1000,
            "postprocess": (finished - forwarded) * 1000,
            "total": (finished - started) * 1000,
        }
        object.__setattr__(prediction, "timings_ms", timings)
        return prediction

    def predict_many(self, images: Sequence[ImageSource], batch_size: int = 8) -> list[Prediction]:
        predictions: list[Prediction] = []
        for start in range(0, len(images), batch_size):
            loaded = [self.load(image) for image in images[start : start + batch_size]]
            outputs = self.forward(np.stack([item.pixels for item in loaded]))
            predictions += self.to_predictions(loaded, outputs)
        return predictions

    def to_predictions(
        self, loaded: Sequence[LoadedImage], outputs: dict[str, np.ndarray]
    ) -> list[Prediction]:
        config = self.config
        decisions = image_decisions(
            outputs["defect_logit"],
            outputs["class_logits"],
            classes=config.classes,
            calibration=config.calibration,
        )
        predictions = []
        for i, (image, decision) in enumerate(zip(loaded, decisions, strict=True)):
            if self.is_anomaly_model:
                regions = regions_from_mask(
                    outputs["mask"][i, 0],
                    label=config.classes[0],
                    width=image.original_width,
                    height=image.original_height,
                )
            else:
                regions = regions_from_outputs(
                    outputs["peaks"][i],
                    outputs["box_size"][i],
                    outputs["box_offset"][i],
                    outputs["mask"][i, 0],
                    classes=config.classes,
                    input_size=self.input_size,
                    width=image.original_width,
                    height=image.original_height,
                    threshold=config.region_threshold,
                )
            predictions.append(
                Prediction(
                    defect_probability=decision.defect_probability,
                    class_scores=decision.class_scores,
                    regions=regions,
                    label=decision.label,
                    confidence=decision.confidence,
                    anomaly_score=float(outputs["mask"][i].max()) if self.is_anomaly_model else None,
                    embedding=summarise_embedding(outputs["embedding"][i], image.pixels),
                    model_version=self.model_version,
                )
            )
        return predictions


def summarise_embedding(embedding: np.ndarray, pixels: np.ndarray) -> EmbeddingSummary:
    """A short fixed-size vector (mean-pooled chunks of the backbone embedding) and input stats."""
    embedding = np.asarray(embedding, np.float32)
    if embedding.size % EMBEDDING_SUMMARY_SIZE == 0:
        pooled = embedding.reshape(EMBEDDING_SUMMARY_SIZE, -1).mean(axis=1)
    else:
        pooled = np.array([chunk.mean() for chunk in np.array_split(embedding, EMBEDDING_SUMMARY_SIZE)])
    # Every other pixel is plenty for global statistics, at a quarter of the cost.
    sampled = pixels[::2, ::2].astype(np.float32)
    gray = sampled @ np.full(3, 1 / 3, np.float32)
    brightness, contrast, sharpness, color = image_statistics(gray, sampled)
    return EmbeddingSummary(
        vector=tuple(np.round(pooled, 5).tolist()),
        brightness=brightness,
        contrast=contrast,
        sharpness=sharpness,
        color=color,
    )


class OnnxPredictor(Predictor):
    backend = "onnx"

    def __init__(self, bundle_dir: str | Path, *, model_version: str = "", threads: int | None = None):
        super().__init__(bundle_dir, model_version=model_version, threads=threads)
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(self.bundle_dir / ONNX_FILE), options, providers=["CPUExecutionProvider"]
        )
        # At most cores / threads-per-run forwards at once: a run already spreads over its threads,
        # and more concurrent runs than cores fight over them (measured in a web server on 2 cores
        # with unbounded runs: 11 ms per image with one client, 175 ms with 16). Decoding and
        # post-processing of other requests still overlap a forward.
        cores = os.cpu_count() or 1
        self._forward_slots = threading.BoundedSemaphore(max(1, cores // (threads or cores)))

    def forward(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        with self._forward_slots:
            outputs = self.session.run(list(OUTPUT_NAMES), {"images": batch})
        return dict(zip(OUTPUT_NAMES, outputs, strict=True))


class TorchPredictor(Predictor):
    backend = "torch"

    def __init__(self, bundle_dir: str | Path, *, model_version: str = "", threads: int | None = None):
        super().__init__(bundle_dir, model_version=model_version, threads=threads)
        import torch

        from models_registry.ml.network import load_network, serving_graph

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.graph = serving_graph(load_network(self.bundle_dir, self.config.network), self.config.preprocess)

    def forward(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        with self._torch.inference_mode():
            outputs = self.graph(self._torch.from_numpy(batch))
        return {name: tensor.numpy() for name, tensor in zip(OUTPUT_NAMES, outputs, strict=True)}


def load_predictor(
    bundle_dir: str | Path, *, backend: str = "onnx", model_version: str = "", threads: int | None = None
) -> Predictor:
    if backend == "onnx":
        return OnnxPredictor(bundle_dir, model_version=model_version, threads=threads)
    if backend == "torch":
        return TorchPredictor(bundle_dir, model_version=model_version, threads=threads)
    raise ValueError(f"unknown backend {backend!r}: use 'onnx' or 'torch'")
