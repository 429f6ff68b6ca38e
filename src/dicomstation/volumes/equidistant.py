"""Resample an unevenly spaced stack (missing slices, variable spacing) onto equidistant slices.

Like dcm2niix's ``_Eq`` output: the new slices are one median step apart along
the slice normal, from the first slice to the last; each is interpolated
linearly between the two source slices around it (by their real positions), so
a missing slice is filled from its neighbours and no slice is misplaced.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["equidistant_slices", "is_uneven"]

#: Spacing differences below this (mm) count as even.
TOLERANCE_MM = 0.01


def is_uneven(distances: npt.NDArray[np.float64], step: float) -> bool:
    """Whether slices at ``distances`` (mm along the normal) are not ``step`` apart."""
    return len(distances) > 2 and bool(np.max(np.abs(np.diff(distances) - step)) > TOLERANCE_MM)


def equidistant_slices(
    array: npt.NDArray[np.generic], distances: npt.NDArray[np.float64], step: float
) -> npt.NDArray[np.float32]:
    """Interpolate ``array`` ``(time, slice, ...)`` onto slices ``step`` mm apart.

    Parameters
    ----------
    array : numpy.ndarray
        Slices at ``distances`` (ascending, mm along the normal, first at 0).
    distances : numpy.ndarray
        Position of each slice along the normal.
    step : float
        The new slice spacing.

    Returns
    -------
    numpy.ndarray
        float32, ``(time, n, ...)`` with ``n = round(extent / step) + 1``.
    """
    extent = float(distances[-1] - distances[0])
    count = round(extent / step) + 1
    targets = distances[0] + step * np.arange(count)
    upper = np.clip(np.searchsorted(distances, targets, side="right"), 1, len(distances) - 1)
    lower = upper - 1
    span = distances[upper] - distances[lower]
    weight = np.clip((targets - distances[lower]) / np.where(span > 0, span, 1.0), 0.0, 1.0)
    out = np.empty((array.shape[0], count, *array.shape[2:]), dtype=np.float32)
    for k in range(count):
        w = float(weight[k])
        below = array[:, lower[k]].astype(np.float32)
        if w > 0.0:
            below *= 1.0 - w
            below += w * array[:, upper[k]].astype(np.float32)
        out[:, k] = below
    return out
