"""Post-processing on constructed network outputs: detections from peaks, region masks as run lengths."""

import numpy as np
import pytest

from models_registry.ml.serving.postprocessing import decode_detections, run_length_encode


def test_decode_detections_reads_peaks_sizes_and_offsets():
    peaks = np.zeros((2, 4, 4), np.float32)
    peaks[1, 2, 1] = 0.9
    size = np.zeros((2, 4, 4), np.float32)
    size[:, 2, 1] = np.log([2.0, 4.0])  # 2 x 4 cells
    offset = np.full((2, 4, 4), 0.5, np.float32)
    (detection,) = decode_detections(peaks, size, offset, min_score=0.5)
    assert detection.class_index == 1 and detection.score == pytest.approx(0.9)
    # centre (1.5, 2.5) cells * 8 px = (12, 20); size 16 x 32 px
    assert (detection.x1, detection.y1, detection.x2, detection.y2) == pytest.approx((4, 4, 20, 36))


def test_run_length_encoding_round_trips():
    mask = np.array([[1, 1, 0], [0, 1, 1]], bool)
    rle = run_length_encode(mask)
    assert rle == {"size": [2, 3], "counts": [0, 2, 2, 2]}
    flat = np.concatenate([np.full(n, i % 2) for i, n in enumerate(rle["counts"])])
    assert (flat.reshape(2, 3) == mask).all()
