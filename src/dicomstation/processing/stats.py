"""Segment statistics: volume in mL and intensity statistics inside each segment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import highdicom as hd
import numpy as np
import numpy.typing as npt

from dicomstation.errors import ProcessingError

__all__ = ["SegmentStatistics", "segment_statistics"]


@dataclass(frozen=True)
class SegmentStatistics:
    """Statistics of one segment over an intensity volume.

    Attributes
    ----------
    segment_number : int
        The segment's number (its label value).
    label : str
        Its name.
    voxel_count : int
        Voxels in the segment.
    volume_ml : float
        Physical volume in millilitres (voxel count times voxel volume / 1000).
    mean, minimum, maximum, std : float
        Intensity statistics (NaN when the segment is empty); ``std`` is the
        population standard deviation, as Slicer's Segment Statistics reports.
    area_mm2 : float or None
        In-plane area in mm2 of a segment of a projection image (CR, DX...: no
        patient geometry, so ``volume_ml`` has no meaning); set by the export layer,
        which knows the image. None otherwise.
    """

    segment_number: int
    label: str
    voxel_count: int
    volume_ml: float
    mean: float
    minimum: float
    maximum: float
    std: float
    area_mm2: float | None = None


def _labelmap(
    volume: hd.Volume, masks: Mapping[int, hd.Volume] | hd.Volume
) -> list[tuple[int, npt.NDArray[np.bool_]]]:
    if isinstance(masks, hd.Volume):
        if not volume.geometry_equal(masks):
            raise ProcessingError("label map does not have the intensity volume's geometry")
        labels = np.asarray(masks.array)
        return [(int(n), labels == n) for n in np.unique(labels) if n != 0]
    out = []
    for number, mask in masks.items():
        if not volume.geometry_equal(mask):
            raise ProcessingError(f"segment {number} mask does not have the volume's geometry")
        out.append((number, np.asarray(mask.array, dtype=bool)))
    return out


def _moments(
    data: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_]
) -> tuple[float, float, float, float]:
    """``ndimage.mean``, ``variance``, ``minimum`` and ``maximum`` of ``data`` over ``mask``.

    The same arithmetic as scipy's one-label path (``_stats`` / ``_select`` with a scalar
    index: sum / count, the sum of squares about ``vals.mean()`` / count, min, max of
    ``data[mask]``), so the same floats, from one selection instead of four.
    """
    vals = data[mask]
    count = np.float64(vals.size)
    centered = vals - vals.mean()
    variance = (centered * centered.conjugate()).sum() / count
    return float(vals.sum() / count), float(variance), float(vals.min()), float(vals.max())


def segment_statistics(
    volume: hd.Volume,
    masks: Mapping[int, hd.Volume] | hd.Volume,
    labels: Mapping[int, str] | None = None,
) -> tuple[SegmentStatistics, ...]:
    """Compute statistics of each segment over ``volume``.

    Parameters
    ----------
    volume : highdicom.Volume
        Intensities.
    masks : mapping of int to highdicom.Volume, or highdicom.Volume
        Boolean masks by segment number (segments may overlap), or one
        integer label map (each non-zero value a segment).
    labels : mapping of int to str, optional
        Segment names; ``"Segment <n>"`` by default.

    Returns
    -------
    tuple of SegmentStatistics
        One per segment, in segment-number order.
    """
    if volume.number_of_channel_dimensions != 0:
        raise ProcessingError("statistics need a single-channel intensity volume")
    names = dict(labels or {})
    voxel_ml = float(volume.voxel_volume) / 1000.0
    data = np.asarray(volume.array, dtype=np.float64)
    result = []
    for number, mask in sorted(_labelmap(volume, masks), key=lambda item: item[0]):
        count = int(np.count_nonzero(mask))
        if count:
            mean, var, low, high = _moments(data, mask)
        else:
            mean = var = low = high = float("nan")
        result.append(
            SegmentStatistics(
                segment_number=number,
                label=names.get(number, f"Segment {number}"),
                voxel_count=count,
                volume_ml=count * voxel_ml,
                mean=mean,
                minimum=low,
                maximum=high,
                std=float(np.sqrt(var)),
            )
        )
    return tuple(result)
