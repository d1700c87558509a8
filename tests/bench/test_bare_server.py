"""bench/bare_server.py, the reference the line API is measured against: the tiles it cuts for a
model of the tiles geometry cover the frame as the model's own geometry does."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from models_registry.ml.geometry import TILE_OVERLAP, TILE_SIDE, TILES, Geometry

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from bare_server import tile_starts  # noqa: E402


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (1920, 1080), (4000, 3000)])
def test_the_bare_server_cuts_as_many_tiles_covering_the_frame_as_loupe(width, height):
    geometry = Geometry(TILES, TILE_SIDE, TILE_SIDE, scale=1.0, overlap=TILE_OVERLAP)
    for length, tile in ((width, TILE_SIDE), (height, TILE_SIDE)):
        starts = tile_starts(length, tile, TILE_OVERLAP)
        assert starts[0] == 0 and starts[-1] + tile == length  # the frame covered, nothing padded
        assert all(
            later - earlier <= tile - TILE_OVERLAP for earlier, later in zip(starts, starts[1:], strict=False)
        )
    views = len(tile_starts(width, TILE_SIDE, TILE_OVERLAP)) * len(
        tile_starts(height, TILE_SIDE, TILE_OVERLAP)
    )
    assert views == geometry.views_per_frame(width, height)


def test_a_frame_no_larger_than_a_tile_is_one_tile():
    assert tile_starts(320, 320, 32) == [0]
    assert tile_starts(200, 320, 32) == [0]
