import pytest


@pytest.fixture(autouse=True)
def _media_in_tmp_path(media_root):
    """Every import test stores its images and masks in the per-test media folder."""
    return media_root


# Stations with the tiny model, for the labeling work tests (units go through the line service).
from tests.inspection.conftest import device_client, make_model_version, make_station, tiny_bundle  # noqa: E402, F401
