"""The training device (LOUPE_TORCH_DEVICE): chosen, refused before any work, and a tiny training
on a GPU where the machine has one."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models_registry.ml.device import DeviceUnavailable, torch_device
from models_registry.ml.models.defectnet.training import TrainConfig
from models_registry.ml.pipeline import train_bundle
from models_registry.ml.serving.predictor import OnnxPredictor
from tests.models_registry.ml.test_pipeline import CLASSES, GEOMETRY, _write_units

CUDA = torch.cuda.is_available()


def test_auto_is_the_gpu_when_torch_sees_one_else_the_cpu():
    assert torch_device("auto") == torch.device("cuda" if CUDA else "cpu")
    assert torch_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "CPU", ""])
def test_a_name_that_is_no_device_is_refused(name):
    with pytest.raises(ValueError, match="expected auto, cpu, cuda or cuda:N"):
        torch_device(name)


def test_a_gpu_the_machine_lacks_is_refused():
    with pytest.raises(DeviceUnavailable, match="'cuda:99'"):
        torch_device("cuda:99")


@pytest.mark.skipif(CUDA, reason="this machine has a CUDA GPU: 'cuda' is available here")
def test_cuda_on_a_machine_without_a_gpu_is_refused():
    with pytest.raises(DeviceUnavailable, match="torch sees no CUDA GPU"):
        torch_device("cuda")


def test_a_training_on_a_missing_gpu_fails_before_any_work(tmp_path):
    with pytest.raises(DeviceUnavailable):
        train_bundle(
            out_dir=tmp_path / "bundle",
            classes=CLASSES,
            train=_write_units(tmp_path, 4, seed=1),
            validation=_write_units(tmp_path, 2, seed=2),
            geometry=GEOMETRY,
            config=TrainConfig(epochs=1, batch_size=2, warmup_steps=1),
            device="cuda:99",
        )

    assert not (tmp_path / "bundle").exists()


def _first_step_loss(tmp_path: Path, device: str) -> tuple[float, Path]:
    losses: list[float] = []
    outcome = train_bundle(
        out_dir=tmp_path / device.replace(":", "-"),
        classes=CLASSES,
        train=_write_units(tmp_path, 8, seed=1),
        validation=_write_units(tmp_path, 4, seed=2),
        geometry=GEOMETRY,
        config=TrainConfig(epochs=1, batch_size=4, warmup_steps=1),
        pretrained=False,
        on_step=lambda step, steps, loss: losses.append(loss),
        device=device,
    )
    return losses[0], outcome.bundle_dir


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU: torch sees none on this machine")
def test_a_tiny_training_on_cuda_gives_a_bundle_that_serves(tmp_path):
    cpu_loss, _ = _first_step_loss(tmp_path, "cpu")
    cuda_loss, bundle = _first_step_loss(tmp_path, "cuda")

    # the same seeded weights and batch: the first step's loss agrees up to GPU arithmetic
    assert cuda_loss == pytest.approx(cpu_loss, rel=1e-3)
    image = Image.fromarray(np.zeros((96, 160, 3), dtype=np.uint8))
    assert 0.0 <= OnnxPredictor(bundle).predict(image).defect_probability <= 1.0
