"""Processing on volumes: segmentation, filters, resampling and segment statistics.

Inputs and outputs are :class:`highdicom.Volume` objects (masks are boolean
volumes with the geometry of their intensity volume), so every result can be
exported against its source series by :mod:`dicomstation.export`.

The names are imported on first use (module ``__getattr__``): ``from dicomstation.processing
import SegmentStatistics`` imports :mod:`dicomstation.processing.stats` only, not the filters
and masks (scipy, scikit-image) beside it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dicomstation.lazy_exports import lazy_exports

if TYPE_CHECKING:
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

#: public name -> the module of this package that defines it
_EXPORTS: dict[str, str] = {
    "Seed": "masks",
    "SegmentStatistics": "stats",
    "fill_holes": "masks",
    "flood": "masks",
    "gaussian_smooth": "filters",
    "grow_from_seeds": "masks",
    "keep_largest_island": "masks",
    "median_smooth": "filters",
    "region_grow": "masks",
    "resample": "filters",
    "segment_statistics": "stats",
    "smooth_mask": "masks",
    "threshold": "masks",
}


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)


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
