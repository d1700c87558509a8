"""`SyntheticConfig`: what the generator refuses."""

from __future__ import annotations

import pytest

from tests.models_registry.ml.synthetic.helpers import tiny


@pytest.mark.parametrize(
    "overrides",
    [
        {"width": 10},
        {"defect_rate": 1.5},
        {"brightness": 0.0},
        {"blur": -1.0},
        {"color_cast": (1.0, 1.0)},
        {"color_cast": (1.0, -1.0, 1.0)},
        {"new_defect": "dent"},
    ],
)
def test_config_rejects_bad_values(overrides):
    with pytest.raises(ValueError):
        tiny(**overrides)
