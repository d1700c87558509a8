import pytest


@pytest.fixture(autouse=True)
def _media_in_tmp_path(media_root):
    """Every import test stores its images and masks in the per-test media folder."""
    return media_root
