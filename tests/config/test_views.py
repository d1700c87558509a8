import importlib
import socket
import sys
import types
from dataclasses import dataclass

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class FakeModelVersion:
    name: str = "defect-detector"
    version: int = 3

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


def _patch_registry(monkeypatch, *, active_model_version, predictor_get) -> None:
    """Replace the registry's selector and service, even before their modules exist."""
    replacements = [
        ("models_registry.selectors", "model_version_active", lambda **kwargs: active_model_version),
        ("models_registry.services", "predictor_get", predictor_get),
    ]
    for module_name, attribute, replacement in replacements:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            module = types.ModuleType(module_name)
            monkeypatch.setitem(sys.modules, module_name, module)
        monkeypatch.setattr(module, attribute, replacement, raising=False)


@pytest.fixture
def ready_model(monkeypatch) -> FakeModelVersion:
    model_version = FakeModelVersion()
    _patch_registry(monkeypatch, active_model_version=model_version, predictor_get=lambda **kwargs: object())
    return model_version


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_health_is_ok_when_database_redis_and_model_answer(client, ready_model):
    response = client.get(reverse("health"))

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "redis": True,
        "model": True,
    }
    assert body["checks"]["model"]["detail"] == "defect-detector v3"


def test_health_is_unavailable_when_redis_is_down(client, ready_model, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"

    response = client.get(reverse("health"))

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"]["ok"] is False
    assert "Redis unreachable" in body["checks"]["redis"]["detail"]
    assert body["checks"]["database"]["ok"] is True


def test_health_is_unavailable_without_an_active_model(client, monkeypatch):
    _patch_registry(monkeypatch, active_model_version=None, predictor_get=lambda **kwargs: object())

    response = client.get(reverse("health"))

    assert response.status_code == 503
    assert response.json()["checks"]["model"] == {"ok": False, "detail": "no active model version"}


def test_health_is_unavailable_when_the_model_cannot_load(client, monkeypatch):
    def predictor_get(*, model_version):
        raise FileNotFoundError("model.onnx")

    _patch_registry(monkeypatch, active_model_version=FakeModelVersion(), predictor_get=predictor_get)

    response = client.get(reverse("health"))

    assert response.status_code == 503
    model_check = response.json()["checks"]["model"]
    assert model_check["ok"] is False
    assert "model.onnx" in model_check["detail"]


def test_health_answers_only_get(client, ready_model):
    response = client.post(reverse("health"))

    assert response.status_code == 405
