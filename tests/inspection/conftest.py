"""Fixtures for the line API: a real (tiny) trained model, stations, device keys, images.

The tiny model is trained once per test session on generated phone screens (one epoch at 64 px: a
few seconds), the stain model (which localises its one defect well) in about ten; both are
served from the model cache like any registered version; tests set its
`risk_control` row to make the policy's outcome certain without faking a prediction.
"""

from __future__ import annotations

import ipaddress
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rest_framework.test import APIClient

from inspection.enums import AutomationLevel
from inspection.models import Station
from inspection.services.stations import device_key_create, station_create
from models_registry import mlflow_registry
from models_registry.ml.geometry import ASPECT, Geometry
from models_registry.ml.serving.bundle import read_config
from models_registry.ml.synthetic.config import SyntheticConfig
from models_registry.ml.synthetic.scene import generate_unit
from models_registry.ml.types import NO_DEFECT, Sample
from models_registry.models import ModelVersion
from tests.inspection.camera import train_stain_model
from tests.inspection.factories import certain_risk_control
from tests.inspection.webhook_receiver import WebhookReceiver, webhook_receiver_serving

TINY_CLASSES = ("crack", "scratch")


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    from models_registry.ml.models.defectnet.training import TrainConfig
    from models_registry.ml.pipeline import train_bundle

    folder = tmp_path_factory.mktemp("tiny-model")
    rng = np.random.default_rng(11)
    config = SyntheticConfig(width=160, height=90)
    samples = []
    for index in range(24):
        label = (NO_DEFECT, *TINY_CLASSES)[index % 3]
        unit = generate_unit(rng, config, label=label)
        image_path = folder / f"unit-{index}.png"
        unit.image.save(image_path)
        masks: tuple = ()
        if unit.defective:
            mask_path = folder / f"unit-{index}-mask.png"
            Image.fromarray((unit.mask * 255).astype(np.uint8)).save(mask_path)
            masks = ((unit.label, str(mask_path)),)
        samples.append(
            Sample(
                key=f"unit-{index}",
                image_path=str(image_path),
                defective=unit.defective,
                classes=(unit.label,) if unit.defective else (),
                mask_paths=masks,
            )
        )
    outcome = train_bundle(
        out_dir=folder / "bundle",
        classes=TINY_CLASSES,
        train=samples[:16],
        validation=samples[16:],
        geometry=Geometry(ASPECT, 64, 64),
        config=TrainConfig(epochs=1, batch_size=4, seed=0),
    )
    return outcome.bundle_dir


@pytest.fixture(scope="session")
def stain_bundle(tmp_path_factory) -> Path:
    """A model that finds one kind of defect well (tests/inspection/camera.py), for checking
    where regions land at every frame size."""
    return train_stain_model(tmp_path_factory.mktemp("stain-model"))


@pytest.fixture
def make_model_version(tiny_bundle: Path, settings) -> Callable[..., ModelVersion]:
    """Register the tiny model under a name/version (served from the model cache)."""

    def make(
        name: str = "tiny", version: int = 1, threshold: float | None = 0.0, bundle: Path | None = None
    ) -> ModelVersion:
        target = Path(settings.LOUPE_MODEL_CACHE) / name / str(version)
        if not target.exists():
            shutil.copytree(bundle or tiny_bundle, target)
        config = read_config(target)
        return ModelVersion.objects.create(
            name=name,
            version=version,
            mlflow_run_id="test",
            source_uri=str(target),
            dataset_name=name,
            architecture=f"defectnet-efficientnet_lite0-{config.geometry.slug}",
            geometry=config.geometry.as_dict(),
            classes=list(config.classes),
            risk_control=certain_risk_control(threshold),
        )

    return make


REGISTERED_NAME = "loupe-screens"


@pytest.fixture
def registered(tiny_bundle):
    """Register the tiny bundle in MLflow as the next version of `name`, mirrored as a row.

    The test run's MLflow store is shared by its tests and by the servers they start, so the
    names used here start empty: versions and aliases an earlier test left would otherwise show
    in this test's (the aliases are compared whole)."""
    from mlflow.exceptions import MlflowException

    try:
        mlflow_registry._client().delete_registered_model(REGISTERED_NAME)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise

    def register(name: str = REGISTERED_NAME) -> ModelVersion:
        with mlflow_registry.training_run(run_name=f"{name}-test") as run:
            run.log_artifacts(tiny_bundle, mlflow_registry.MODEL_ARTIFACT_PATH)
        version = mlflow_registry.register_model(run_id=run.run_id, name=name)
        return ModelVersion.objects.create(
            name=version.name,
            version=version.version,
            mlflow_run_id=version.run_id,
            source_uri=version.source,
            architecture="defectnet-efficientnet_lite0-64",
            classes=["crack", "scratch"],
        )

    return register


@pytest.fixture
def make_station(make_model_version) -> Callable[..., Station]:
    def make(
        slug: str = "screens-1", level: str = AutomationLevel.FULL, champion="default", **settings
    ) -> Station:
        if champion == "default":
            champion = make_model_version()
        settings.setdefault("audit_share", 0.0)
        return station_create(slug=slug, level=level, champion=champion, **settings)

    return make


@pytest.fixture
def device_client() -> Callable[[Station], APIClient]:
    """An API client authenticated with a new device key of the station."""

    def make(station: Station) -> APIClient:
        _, key = device_key_create(station=station, name="line computer")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        return client

    return make


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A station's webhook endpoint on 127.0.0.1, recording every request (webhook_receiver.py)."""
    with webhook_receiver_serving() as receiver:
        yield receiver


LOOPBACK = "127.0.0.0/8"


@pytest.fixture
def allow_loopback_webhooks(settings, monkeypatch) -> None:
    """Let webhooks go to 127.0.0.0/8 (the test receiver), as an operator would allow an internal
    receiver: in this process and in the worker processes a test starts after it (environment)."""
    settings.LOUPE_WEBHOOK_ALLOWED_NETWORKS = (ipaddress.ip_network(LOOPBACK),)
    monkeypatch.setenv("LOUPE_WEBHOOK_ALLOWED_NETWORKS", LOOPBACK)
