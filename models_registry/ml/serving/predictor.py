"""Serving: `Predictor.predict(image) -> Prediction`, on ONNX Runtime (`OnnxPredictor`) or torch
(`TorchPredictor`), regions in the original frame's pixels (docs/model.md)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models_registry.ml.device import available_cores
from models_registry.ml.frames import Frame, FrameSource, frame_decode, header_of, open_image
from models_registry.ml.layout import OUTPUT_NAMES
from models_registry.ml.serving.bundle import (
    ONNX_FILE,
    REFERENCE_FILE,
    BundleConfig,
    load_reference,
    read_config,
)
from models_registry.ml.serving.frame_check import FrameLimits, FrameProblem, frame_check
from models_registry.ml.serving.postprocessing import (
    FrameOutputs,
    image_decisions,
    merge_views,
    regions_from_mask,
    regions_from_outputs,
)
from models_registry.ml.types import EmbeddingSummary, Prediction, image_statistics

EMBEDDING_SUMMARY_SIZE = 32
# Input statistics read this many pixels of the model's input, evenly spaced, whatever its size.
STATISTICS_SAMPLE_PIXELS = 128 * 128
FORWARD_BATCH = 16
# How many batch sizes get an ONNX Runtime session of their own, fixed to that size: the first
# seen (a line's camera gives one frame size, so one batch a frame: one view for the aspect
# geometry, 15 tiles of 1280x720 at native scale); any other shares the free one.
SPECIALISED_BATCH_SIZES = 4
BATCH_DIMENSION = "batch"  # the graph's free batch dimension (serving.export)

InputStatistics = tuple[float, float, float, tuple[float, float, float]]


class Predictor:
    """Loads a bundle once; thread-safe for concurrent `predict` calls."""

    backend = "base"

    def __init__(self, bundle_dir: str | Path, *, model_version: str = "", threads: int | None = None):
        self.bundle_dir = Path(bundle_dir)
        self.config: BundleConfig = read_config(self.bundle_dir)
        self.model_version = model_version or self.bundle_dir.name
        self.threads = threads
        self.geometry = self.config.geometry
        self.is_anomaly_model = self.config.network.kind == "anomaly"
        reference = load_reference(self.bundle_dir) if (self.bundle_dir / REFERENCE_FILE).exists() else None
        self.frame_limits = FrameLimits.for_model(self.geometry, reference)

    # -- subclasses -----------------------------------------------------------------------
    def forward(self, batch: np.ndarray, *, spread: bool = True) -> dict[str, np.ndarray]:
        """uint8 N x H x W x 3 views (the geometry's size) in, the graph's outputs by name out.
        `spread=False`: the caller knows other work wants the other cores (the line API under
        load), so the forward keeps to one thread."""
        raise NotImplementedError

    # -- public ---------------------------------------------------------------------------
    def decode(self, source: FrameSource | Frame) -> Frame:
        """The frame decoded as small as this model's geometry allows (a JPEG at a reduced DCT
        scale), knowing its original size."""
        if isinstance(source, Frame):
            return source
        image = open_image(source)
        header = header_of(image)
        return frame_decode(source, at_least=self.decode_size(header.width, header.height), image=image)

    def decode_size(self, width: int, height: int) -> tuple[int, int]:
        return self.geometry.decode_size(width, height)

    def content(self, frame: Frame) -> np.ndarray:
        """The frame at the geometry's scale: what the views are cut from."""
        return self.geometry.content(frame.pixels, frame.width, frame.height)

    def frame_problem(self, frame: Frame) -> FrameProblem | None:
        """Why this frame must go to a person instead of the model, or None."""
        return self._frame_problem(frame, content_statistics(self.content(frame)))

    def _frame_problem(self, frame: Frame, statistics: InputStatistics) -> FrameProblem | None:
        brightness, contrast, _, _ = statistics
        return frame_check(
            width=frame.width,
            height=frame.height,
            brightness=brightness,
            contrast=contrast,
            limits=self.frame_limits,
        )

    def outputs(
        self, contents: Sequence[np.ndarray], batch_size: int = FORWARD_BATCH, *, spread: bool = True
    ) -> list[FrameOutputs]:
        """Merged outputs (content pixels) for frames already at the content size: the views of
        every frame run in batches through the graph."""
        views, owners = [], []
        for index, content in enumerate(contents):
            for view in self.geometry.views(content):
                views.append(view)
                owners.append(index)
        if not views:
            return []
        chunks = [
            self.forward(np.stack([view.pixels for view in views[start : start + batch_size]]), spread=spread)
            for start in range(0, len(views), batch_size)
        ]
        outputs = {name: np.concatenate([chunk[name] for chunk in chunks]) for name in OUTPUT_NAMES}
        merged = []
        for index, content in enumerate(contents):
            rows = [k for k, owner in enumerate(owners) if owner == index]
            merged.append(
                merge_views(
                    [(views[k].x, views[k].y) for k in rows],
                    {name: value[rows[0] : rows[-1] + 1] for name, value in outputs.items()},
                    content_width=content.shape[1],
                    content_height=content.shape[0],
                )
            )
        return merged

    def predict(self, image: FrameSource | Frame) -> Prediction:
        return self._run(image, check=False)[1]

    def check_and_predict(
        self, image: FrameSource | Frame, *, spread: bool = True
    ) -> tuple[FrameProblem | None, Prediction | None]:
        """The frame check, then (only for a frame that passes it) the prediction: what the line
        API does with every unit, decoding and resizing the frame once for both. `spread`: as
        for `forward`."""
        return self._run(image, check=True, spread=spread)

    def _run(
        self, image: FrameSource | Frame, *, check: bool, spread: bool = True
    ) -> tuple[FrameProblem | None, Prediction | None]:
        started = time.perf_counter()
        frame = self.decode(image)
        decoded = time.perf_counter()
        content = self.content(frame)
        statistics = content_statistics(content)
        problem = self._frame_problem(frame, statistics) if check else None
        if problem is not None:
            return problem, None
        prepared = time.perf_counter()
        outputs = self.outputs([content], spread=spread)[0]
        forwarded = time.perf_counter()
        prediction = self.to_prediction(frame, outputs, statistics)
        finished = time.perf_counter()
        timings = {
            "decode": (decoded - started) * 1000,
            "preprocess": (prepared - decoded) * 1000,
            "forward": (forwarded - prepared) * 1000,
            "postprocess": (finished - forwarded) * 1000,
            "total": (finished - started) * 1000,
        }
        object.__setattr__(prediction, "timings_ms", timings)
        return None, prediction

    def predict_many(self, images: Sequence[FrameSource | Frame], batch_size: int = 8) -> list[Prediction]:
        predictions: list[Prediction] = []
        for start in range(0, len(images), batch_size):
            frames = [self.decode(image) for image in images[start : start + batch_size]]
            contents = [self.content(frame) for frame in frames]
            for frame, content, outputs in zip(frames, contents, self.outputs(contents), strict=True):
                predictions.append(self.to_prediction(frame, outputs, content_statistics(content)))
        return predictions

    def to_prediction(self, frame: Frame, outputs: FrameOutputs, statistics: InputStatistics) -> Prediction:
        config = self.config
        decision = image_decisions(
            np.array([outputs.defect_logit]),
            outputs.class_logits[None],
            classes=config.classes,
            calibration=config.calibration,
        )[0]
        scale = (outputs.content_width / frame.width, outputs.content_height / frame.height)
        if self.is_anomaly_model:
            regions = regions_from_mask(outputs, label=config.classes[0], scale=scale)
        else:
            regions = regions_from_outputs(
                outputs,
                classes=config.classes,
                scale=scale,
                width=frame.width,
                height=frame.height,
                threshold=config.region_threshold,
            )
        return Prediction(
            defect_probability=decision.defect_probability,
            class_scores=decision.class_scores,
            regions=regions,
            label=decision.label,
            confidence=decision.confidence,
            anomaly_score=float(outputs.mask.max()) if self.is_anomaly_model else None,
            embedding=summarise_embedding(outputs.embedding, statistics),
            model_version=self.model_version,
        )


def content_statistics(pixels: np.ndarray) -> InputStatistics:
    """Brightness, contrast, sharpness and mean colour of the model's input, read from about
    `STATISTICS_SAMPLE_PIXELS` evenly spaced pixels (every other pixel of a 256 px input)."""
    step = max(2, int(round(math.sqrt(pixels.shape[0] * pixels.shape[1] / STATISTICS_SAMPLE_PIXELS))))
    sampled = pixels[::step, ::step].astype(np.float32)
    gray = sampled @ np.full(3, 1 / 3, np.float32)
    return image_statistics(gray, sampled)


def summarise_embedding(embedding: np.ndarray, statistics: InputStatistics) -> EmbeddingSummary:
    """A short fixed-size vector (mean-pooled chunks of the backbone embedding) and input stats."""
    embedding = np.asarray(embedding, np.float32)
    if embedding.size % EMBEDDING_SUMMARY_SIZE == 0:
        pooled = embedding.reshape(EMBEDDING_SUMMARY_SIZE, -1).mean(axis=1)
    else:
        pooled = np.array([chunk.mean() for chunk in np.array_split(embedding, EMBEDDING_SUMMARY_SIZE)])
    brightness, contrast, sharpness, color = statistics
    return EmbeddingSummary(
        vector=tuple(np.round(pooled, 5).tolist()),
        brightness=brightness,
        contrast=contrast,
        sharpness=sharpness,
        color=color,
    )


class OnnxPredictor(Predictor):
    """ONNX Runtime, one session per (batch size, threads) actually used.

    A session is specialised to its batch size (the graph's free batch dimension fixed, so ONNX
    Runtime plans every shape once: a frame's one view 7.4 → 6.1 ms on one thread; 15 tiles of 320
    px 311–330 → 217–257 ms on two, bench/RESULTS.md) and to its threads. A forward that runs
    alone in the process spreads over `threads` cores; while others run, each keeps to one thread,
    one forward per core: threads of several runs fighting over the same cores cost more than they
    give. Threads stop spinning when a run ends (`session.force_spinning_stop`): spinning idle
    threads took ~10 ms of CPU per unit from the decoding, database and storage work of the other
    requests.
    """

    backend = "onnx"

    def __init__(self, bundle_dir: str | Path, *, model_version: str = "", threads: int | None = None):
        super().__init__(bundle_dir, model_version=model_version, threads=threads)
        import onnxruntime

        self._onnxruntime = onnxruntime
        self._model_path = str(self.bundle_dir / ONNX_FILE)
        self._sessions: dict[tuple[int | None, int], object] = {}
        self._sessions_lock = threading.Lock()
        self._specialised: set[int] = set()
        cores = available_cores()
        self.alone_threads = max(1, min(threads or cores, cores))
        # At most one single-threaded forward per core at once; decoding and post-processing of
        # other requests still overlap them.
        self._forward_slots = threading.BoundedSemaphore(cores)
        self._running = 0
        self._running_lock = threading.Lock()
        self.session = self._session(None, self.alone_threads)  # loads (and checks) the graph now

    def _session(self, batch: int | None, threads: int):
        if batch is not None and batch not in self._specialised:
            with self._sessions_lock:
                if len(self._specialised) < SPECIALISED_BATCH_SIZES:
                    self._specialised.add(batch)
        key = (batch if batch in self._specialised else None, threads)
        session = self._sessions.get(key)
        if session is not None:
            return session
        with self._sessions_lock:
            session = self._sessions.get(key)
            if session is None:
                options = self._onnxruntime.SessionOptions()
                options.graph_optimization_level = self._onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.add_session_config_entry("session.force_spinning_stop", "1")
                if key[0] is not None:
                    options.add_free_dimension_override_by_name(BATCH_DIMENSION, key[0])
                session = self._onnxruntime.InferenceSession(
                    self._model_path, options, providers=["CPUExecutionProvider"]
                )
                self._sessions[key] = session
        return session

    def forward(self, batch: np.ndarray, *, spread: bool = True) -> dict[str, np.ndarray]:
        with self._forward_slots:
            with self._running_lock:
                alone = self._running == 0
                self._running += 1
            try:
                threads = self.alone_threads if spread and alone else 1
                session = self._session(len(batch), threads)
                outputs = session.run(list(OUTPUT_NAMES), {"images": batch})
            finally:
                with self._running_lock:
                    self._running -= 1
        return dict(zip(OUTPUT_NAMES, outputs, strict=True))


class TorchPredictor(Predictor):
    backend = "torch"

    def __init__(self, bundle_dir: str | Path, *, model_version: str = "", threads: int | None = None):
        super().__init__(bundle_dir, model_version=model_version, threads=threads)
        import torch

        from models_registry.ml.serving.graph import load_network, serving_graph

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.graph = serving_graph(load_network(self.bundle_dir, self.config.network), self.config.preprocess)

    def forward(self, batch: np.ndarray, *, spread: bool = True) -> dict[str, np.ndarray]:
        with self._torch.inference_mode():
            outputs = self.graph(self._torch.from_numpy(np.ascontiguousarray(batch)))
        return {name: tensor.numpy() for name, tensor in zip(OUTPUT_NAMES, outputs, strict=True)}


def load_predictor(
    bundle_dir: str | Path, *, backend: str = "onnx", model_version: str = "", threads: int | None = None
) -> Predictor:
    if backend == "onnx":
        return OnnxPredictor(bundle_dir, model_version=model_version, threads=threads)
    if backend == "torch":
        return TorchPredictor(bundle_dir, model_version=model_version, threads=threads)
    raise ValueError(f"unknown backend {backend!r}: use 'onnx' or 'torch'")
