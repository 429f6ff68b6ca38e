"""Processing on volumes: segmentation, filters, resampling and segment statistics.

Inputs and outputs are :class:`highdicom.Volume` objects (masks are boolean
volumes with the geometry of their intensity volume), so every result can be
exported against its source series by :mod:`dicomstation.export`.
"""

from dicomstation.processing.filters import gaussian_smooth, median_smooth, resample
from dicomstation.processing.masks import (
    Seed,
    fill_holes,
    flood,
    grow_from_seeds,
    keep_largest_island,
    region_grow,
    smooth_mask,
    threshold,
)
from dicomstation.processing.stats import SegmentStatistics, segment_statistics

__all__ = [
    "Seed",
    "SegmentStatistics",
    "fill_holes",
    "flood",
    "gaussian_smooth",
    "grow_from_seeds",
    "keep_largest_island",
    "median_smooth",
    "region_grow",
    "resample",
    "segment_statistics",
    "smooth_mask",
    "threshold",
]
