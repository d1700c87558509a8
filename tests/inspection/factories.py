"""Building blocks for line API tests: images and risk-control tables."""

from __future__ import annotations

import io

import numpy as np

from models_registry.ml.synthetic.config import SyntheticConfig
from models_registry.ml.synthetic.scene import generate_unit


def certain_risk_control(threshold: float | None) -> dict:
    """A risk-control table whose every bound is certified at `threshold` (None: none certified)."""
    return {
        alpha: {"threshold": threshold, "certified": threshold is not None, "coverage": 1.0}
        for alpha in ("0.005", "0.01", "0.02", "0.05", "0.1")
    }


def jpeg_bytes(seed: int = 0, *, width: int = 320, height: int = 180, label: str | None = None) -> bytes:
    unit = generate_unit(
        np.random.default_rng(seed), SyntheticConfig(width=width, height=height), label=label
    )
    buffer = io.BytesIO()
    unit.image.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def upload(data: bytes, name: str = "unit.jpg") -> io.BytesIO:
    file = io.BytesIO(data)
    file.name = name
    return file


def person(name: str = "ines", role: str = "inspector", password: str = "pw"):
    """A user in one of the role groups (inspector, labeler, supervisor)."""
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(name, password=password)
    user.groups.add(Group.objects.get(name=role))
    return user


def signed_in(user):
    """A test client signed in as `user` (no password needed)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def posted_unit(client, serial: str = "SN-1", seed: int = 0, *, width: int = 320, height: int = 180) -> dict:
    """Post a generated unit with a device-key client; its 201 body."""
    image = upload(jpeg_bytes(seed, width=width, height=height))
    response = client.post("/api/v1/units/", {"serial": serial, "image": image}, format="multipart")
    assert response.status_code == 201, response.content
    return response.json()


def station_admin_form(station, **changes) -> dict:
    """What the station's admin page posts when nothing is edited but `changes` (and the webhook
    secret left empty: kept)."""
    from inspection.services.stations import audited_fields, station_snapshot

    snapshot = station_snapshot(station=station)
    form = {name: value for name, value in snapshot.items() if name not in ("champion", "challenger")}
    form.update(
        {
            "defect_classes": "\n".join(station.defect_classes),
            "line": station.line or "",
            "champion": station.champion_id or "",
            "challenger": station.challenger_id or "",
            "webhook_secret": "",
            "device_keys-TOTAL_FORMS": "0",
            "device_keys-INITIAL_FORMS": "0",
            "changes-TOTAL_FORMS": "0",
            "changes-INITIAL_FORMS": "0",
        }
    )
    form.update(changes)
    assert set(audited_fields()) <= set(form)
    return {name: value for name, value in form.items() if value is not False and value is not None}
