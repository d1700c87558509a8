"""The COCO codec: masks to RLE and back."""

from __future__ import annotations

import numpy as np

from models_registry.ml.coco import coco_rle_to_mask, mask_to_coco_rle


def test_rle_round_trip():
    mask = np.zeros((5, 7), dtype=bool)
    mask[0, 0] = mask[1:4, 2:5] = mask[4, 6] = True

    rle = mask_to_coco_rle(mask)

    assert rle["size"] == [5, 7]
    assert rle["counts"][0] == 0  # starts with a (here empty) run of zeros
    assert np.array_equal(coco_rle_to_mask(rle), mask)
