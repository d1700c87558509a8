"""A tiny model trained for a few steps: bundle, ONNX export, predictor contract."""

import threading
from dataclasses import FrozenInstanceError
from pathlib import Path

import numpy as np
import pytest

from models_registry.ml.geometry import ASPECT, Geometry
from models_registry.ml.layout import OUTPUT_NAMES
from models_registry.ml.models.defectnet.training import TrainConfig
from models_registry.ml.serving.bundle import read_config
from models_registry.ml.serving.predictor import SPECIALISED_BATCH_SIZES, OnnxPredictor, TorchPredictor
from models_registry.ml.synthetic.config import SyntheticConfig
from models_registry.ml.synthetic.scene import generate_units
from models_registry.ml.synthetic.writing import samples_write
from models_registry.ml.types import Box, Prediction, Region, Sample

CLASSES = ("crack", "dead_pixels", "scratch", "stain")
GEOMETRY = Geometry(ASPECT, 64, 64)


def _write_units(folder: Path, count: int, seed: int) -> list[Sample]:
    return samples_write(folder, count, seed=seed, config=SyntheticConfig(width=160, height=96))


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> Path:
    from models_registry.ml.pipeline import train_bundle

    folder = tmp_path_factory.mktemp("units")
    reports = []
    outcome = train_bundle(
        out_dir=folder / "bundle",
        classes=CLASSES,
        train=_write_units(folder, 12, seed=1),
        validation=_write_units(folder, 6, seed=2),
        test=_write_units(folder, 6, seed=3),
        geometry=GEOMETRY,
        config=TrainConfig(epochs=2, batch_size=6, warmup_steps=1),
        threads=2,
        on_epoch=reports.append,
    )
    assert [r.epoch for r in reports] == [1, 2]
    assert all(np.isfinite(r.train_loss) for r in reports)
    assert outcome.test_metrics["n_test"] == 6
    return outcome.bundle_dir


def test_bundle_holds_weights_graph_config_and_reference(tiny_bundle):
    names = {p.name for p in tiny_bundle.iterdir()}
    assert {"loupe-model.json", "weights.pt", "model.onnx", "reference.npz"} <= names
    config = read_config(tiny_bundle)
    assert config.classes == CLASSES
    assert config.geometry == GEOMETRY
    assert config.calibration.defect_temperature > 0
    # six validation units cannot certify anything: the bundle says so rather than guessing
    assert set(config.risk_control) == {"0.005", "0.01", "0.02", "0.05", "0.1"}
    assert not any(entry["certified"] for entry in config.risk_control.values())


def test_onnx_and_torch_agree_to_1e4(tiny_bundle, tmp_path):
    onnx = OnnxPredictor(tiny_bundle, threads=2)
    torch_predictor = TorchPredictor(tiny_bundle, threads=2)
    images = []
    for index, unit in enumerate(generate_units(4, seed=9, config=SyntheticConfig(width=200, height=120))):
        path = tmp_path / f"{index}.jpg"
        unit.image.save(path, quality=90)
        images.append(path)
    for path in images:
        a, b = onnx.predict(path), torch_predictor.predict(path)
        assert abs(a.defect_probability - b.defect_probability) < 1e-4
        assert a.label == b.label
        for name in CLASSES:
            assert abs(a.class_scores[name] - b.class_scores[name]) < 1e-4
    batch = np.random.default_rng(0).integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)
    raw_onnx, raw_torch = onnx.forward(batch), torch_predictor.forward(batch)
    for name, value in raw_onnx.items():
        assert np.abs(value - raw_torch[name]).max() < 1e-4, name


def test_prediction_is_a_frozen_dataclass_with_regions_in_image_pixels(tiny_bundle, tmp_path):
    path = tmp_path / "unit.png"
    next(
        generate_units(1, seed=4, config=SyntheticConfig(width=300, height=150, defect_rate=1.0))
    ).image.save(path)
    predictor = OnnxPredictor(tiny_bundle, model_version="tiny:1", threads=2)
    prediction = predictor.predict(path)
    assert isinstance(prediction, Prediction)
    with pytest.raises(FrozenInstanceError):
        prediction.label = "x"  # type: ignore[misc]
    assert 0.0 <= prediction.defect_probability <= 1.0
    assert set(prediction.class_scores) == set(CLASSES)
    assert sum(prediction.class_scores.values()) == pytest.approx(prediction.defect_probability, abs=1e-6)
    assert prediction.model_version == "tiny:1"
    assert prediction.label in ("no_defect", *CLASSES)
    assert len(prediction.embedding.vector) == 32
    for region in prediction.regions:
        assert isinstance(region, Region)
        assert 0 <= region.x <= 300 and 0 <= region.y <= 150
        assert region.x + region.width <= 300.01 and region.y + region.height <= 150.01
    assert {"preprocess", "forward", "postprocess", "total"} <= set(prediction.timings_ms)
    as_dict = prediction.as_dict()
    assert as_dict["verdict"] in ("pass", "fail")


def test_prediction_accepts_bytes_and_pil_images(tiny_bundle, tmp_path):
    unit = next(generate_units(1, seed=5, config=SyntheticConfig(width=160, height=96)))
    path = tmp_path / "u.png"
    unit.image.save(path)
    predictor = OnnxPredictor(tiny_bundle, threads=2)
    from_path = predictor.predict(path)
    assert predictor.predict(path.read_bytes()).defect_probability == pytest.approx(
        from_path.defect_probability
    )
    assert predictor.predict(unit.image).defect_probability == pytest.approx(
        from_path.defect_probability, abs=1e-6
    )


def test_boxes_and_image_labels_alone_train_too(tmp_path):
    """Box-only (VOC-like) and image-class-only samples go through the same recipe."""
    from models_registry.ml.pipeline import train_bundle

    units = list(generate_units(8, seed=11, config=SyntheticConfig(width=96, height=64, defect_rate=0.5)))
    samples = []
    for index, unit in enumerate(units):
        path = tmp_path / f"{index}.png"
        unit.image.save(path)
        boxes = tuple(Box(*map(float, instance.box), instance.label) for instance in unit.instances)
        boxes_only = index % 2 == 0
        samples.append(
            Sample(
                key=path.name,
                image_path=str(path),
                defective=unit.label != "no_defect",
                classes=() if boxes_only or unit.label == "no_defect" else (unit.label,),
                boxes=boxes if boxes_only else (),
            )
        )
    outcome = train_bundle(
        out_dir=tmp_path / "bundle",
        classes=CLASSES,
        train=samples[:6],
        validation=samples[6:],
        geometry=Geometry.square(64),
        config=TrainConfig(epochs=1, batch_size=3, warmup_steps=1),
        threads=2,
    )
    assert (outcome.bundle_dir / "model.onnx").exists()


def test_cold_start_from_defect_free_images_gives_anomaly_scores_and_regions(tmp_path):
    """With only good units, the model is a PatchCore anomaly detector, and says it can't be trusted alone."""
    from models_registry.ml.pipeline import train_bundle

    good = SyntheticConfig(width=160, height=96, defect_rate=0.0)
    samples = []
    for index, unit in enumerate(generate_units(10, seed=21, config=good)):
        path = tmp_path / f"good{index}.png"
        unit.image.save(path)
        samples.append(Sample(key=path.name, image_path=str(path), defective=False))
    outcome = train_bundle(
        out_dir=tmp_path / "bundle",
        classes=(),
        train=samples[:7],
        validation=samples[7:],
        geometry=Geometry(ASPECT, 64, 64),
        threads=2,
    )
    config = read_config(outcome.bundle_dir)
    assert config.network.kind == "anomaly"
    assert config.classes == ("anomaly",)
    assert not any(entry["certified"] for entry in config.risk_control.values())
    assert "no defective units" in config.risk_control["0.05"]["reason"]

    defect = next(generate_units(1, seed=22, config=SyntheticConfig(width=160, height=96, defect_rate=1.0)))
    defect_path = tmp_path / "defect.png"
    defect.image.save(defect_path)
    onnx, torch_predictor = (
        OnnxPredictor(outcome.bundle_dir, threads=2),
        TorchPredictor(outcome.bundle_dir, threads=2),
    )
    prediction = onnx.predict(defect_path)
    assert prediction.anomaly_score is not None
    assert abs(prediction.defect_probability - torch_predictor.predict(defect_path).defect_probability) < 1e-4
    for region in prediction.regions:
        assert region.label == "anomaly" and region.score >= 0.5
    normal_scores = [onnx.predict(s.image_path).defect_probability for s in samples[:7]]
    assert max(normal_scores) < 0.5  # the memory holds these very patches


def test_the_first_batch_sizes_get_a_session_of_their_own_with_the_free_one_s_outputs(tiny_bundle):
    predictor = OnnxPredictor(tiny_bundle, threads=2)
    free = predictor._session(None, 1)
    rng = np.random.default_rng(1)
    sizes = (1, 15, 3, 6, 2)  # one more than are specialised: the last shares the free session
    assert len(sizes) == SPECIALISED_BATCH_SIZES + 1
    for size in sizes:
        batch = rng.integers(0, 256, size=(size, 64, 64, 3), dtype=np.uint8)
        outputs = predictor.forward(batch, spread=False)
        expected = dict(zip(OUTPUT_NAMES, free.run(list(OUTPUT_NAMES), {"images": batch}), strict=True))
        for name, value in outputs.items():
            assert value.shape[0] == size
            assert np.abs(value - expected[name]).max() < 1e-5, (size, name)
    specialised = sorted(key for key in predictor._sessions if key[0] is not None)
    assert specialised == [(size, 1) for size in sorted(sizes[:SPECIALISED_BATCH_SIZES])]
    assert predictor._session(sizes[-1], 1) is free


def test_a_forward_alone_spreads_over_the_threads_and_forwards_side_by_side_keep_to_one(tiny_bundle):
    predictor = OnnxPredictor(tiny_bundle, threads=2)
    used: list[int] = []
    hold, held = threading.Event(), threading.Event()
    session_for = predictor._session

    def recording_session(batch, threads):
        used.append(threads)
        session = session_for(batch, threads)
        if len(used) == 3:  # the first of the two side by side waits until the second has run

            class Held:
                def run(self, names, feeds):
                    held.set()
                    hold.wait(10)
                    return session.run(names, feeds)

            return Held()
        return session

    predictor._session = recording_session
    batch = np.zeros((1, 64, 64, 3), np.uint8)
    predictor.forward(batch)  # alone: both threads
    predictor.forward(batch, spread=False)  # the caller says others want the cores
    first = threading.Thread(target=predictor.forward, args=(batch,))
    first.start()
    assert held.wait(10)
    predictor.forward(batch)  # while the first runs: one thread
    hold.set()
    first.join(10)
    assert used == [2, 1, 2, 1]
