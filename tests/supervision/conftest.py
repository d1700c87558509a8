"""Fixtures for supervision tests: the line API's tiny model and stations."""

from tests.inspection.conftest import device_client, make_model_version, make_station, tiny_bundle  # noqa: F401
