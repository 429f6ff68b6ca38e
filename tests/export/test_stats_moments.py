"""The SR's statistics: the one-selection moments equal scipy.ndimage's, float for float."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from dicomstation.processing.stats import _moments


def test_same_floats_as_ndimage() -> None:
    rng = np.random.default_rng(11)
    for scale in (1.0, 1e-3, 3000.0):
        data = rng.normal(40.0, 300.0, size=(24, 48, 40)) * scale
        mask = rng.random(data.shape) < 0.3
        labels = mask.astype(np.int8)
        expected = (
            float(ndimage.mean(data, labels, 1)),
            float(ndimage.variance(data, labels, 1)),
            float(ndimage.minimum(data, labels, 1)),
            float(ndimage.maximum(data, labels, 1)),
        )
        assert _moments(data, mask) == expected
