"""Intensity filters and resampling of a :class:`highdicom.Volume` (scipy.ndimage)."""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from scipy import ndimage

from dicomstation.errors import ProcessingError

__all__ = ["gaussian_smooth", "median_smooth", "resample"]


def _single(volume: hd.Volume) -> None:
    if volume.number_of_channel_dimensions != 0 or volume.array.ndim != 3:
        shape = volume.array.shape
        raise ProcessingError(f"expected a single-channel 3D volume, got shape {shape}")


def gaussian_smooth(volume: hd.Volume, sigma_mm: float) -> hd.Volume:
    """Gaussian smoothing with a physical sigma (mm), converted per axis to voxels.

    Returns a float32 volume with the same geometry.
    """
    _single(volume)
    if sigma_mm <= 0:
        raise ProcessingError(f"smoothing sigma must be positive, got {sigma_mm}")
    sigma = [sigma_mm / float(s) for s in volume.spacing]
    out = ndimage.gaussian_filter(volume.array.astype(np.float32), sigma=sigma)
    return volume.with_array(out)


def median_smooth(volume: hd.Volume, size: int = 3) -> hd.Volume:
    """Median filter with a cubic window of ``size`` voxels (edge-preserving)."""
    _single(volume)
    if size < 1:
        raise ProcessingError(f"median window must be at least 1 voxel, got {size}")
    return volume.with_array(ndimage.median_filter(volume.array, size=size))


def resample(
    volume: hd.Volume, spacing: Sequence[float], *, order: int = 1, fill: float | None = None
) -> hd.Volume:
    """Resample to a new voxel spacing, keeping orientation and the first voxel's centre.

    Parameters
    ----------
    volume : highdicom.Volume
        The volume (or a mask: use ``order=0``).
    spacing : sequence of 3 floats
        New spacing in mm along the array axes (slice, row, column).
    order : int
        Spline order: 0 nearest (masks, label maps), 1 linear, 3 cubic.
    fill : float or None
        Value outside the input; the volume's minimum by default.

    Returns
    -------
    highdicom.Volume
        The resampled volume; its affine has the new spacing.
    """
    _single(volume)
    new = np.asarray(spacing, dtype=float)
    if new.shape != (3,) or np.any(new <= 0):
        raise ProcessingError(f"spacing must be three positive numbers, got {list(spacing)}")
    old = np.asarray(volume.spacing, dtype=float)
    ratio = new / old
    extent = (np.asarray(volume.spatial_shape) - 1) * old
    shape = tuple(int(n) for n in np.floor(extent / new + 1e-6).astype(int) + 1)
    source = volume.array
    cval = float(np.min(source)) if fill is None else fill
    # The last output voxel lies on the last input voxel when the new spacing divides the
    # extent; rounding (0.8 * 3 / 0.8 > 3) must not push it outside (into ``fill``).
    reach = (np.asarray(volume.spatial_shape) - 1) / np.maximum(np.asarray(shape) - 1, 1)
    scale = np.minimum(ratio, np.where(np.asarray(shape) > 1, reach, ratio))
    out = ndimage.affine_transform(
        source, scale, output_shape=shape, order=order, mode="constant", cval=cval
    )
    if source.dtype == bool:
        out = out.astype(bool)
    affine = volume.affine.copy()
    affine[:3, :3] = affine[:3, :3] * ratio[np.newaxis, :]
    return hd.Volume(
        array=out,
        affine=affine,
        coordinate_system=volume.coordinate_system,
        frame_of_reference_uid=volume.frame_of_reference_uid,
    )
