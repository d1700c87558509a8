"""The line fixtures (a station with a tiny trained champion) for the benchmark tools' tests."""

from tests.inspection.conftest import make_model_version, make_station, tiny_bundle  # noqa: F401
