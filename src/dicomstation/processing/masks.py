"""Segmentation of a :class:`highdicom.Volume` into boolean masks.

Every function takes a volume (intensities or a mask) and returns a new
:class:`highdicom.Volume` with the same geometry (affine, frame of reference),
so results can be exported as DICOM SEG against the volume's source series.
The work is done by scipy.ndimage and scikit-image; nothing is hand-written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
import numpy.typing as npt
from scipy import ndimage
from skimage import filters as _filters
from skimage import segmentation as _segmentation

from dicomstation.errors import ProcessingError

__all__ = [
    "Seed",
    "fill_holes",
    "flood",
    "grow_from_seeds",
    "keep_largest_island",
    "region_grow",
    "smooth_mask",
    "threshold",
]

# scikit-image ships without complete type information.
filters: Any = _filters
segmentation: Any = _segmentation

# 26-connectivity in 3D (faces, edges and corners), as Slicer's islands tools use.
_FULL = ndimage.generate_binary_structure(3, 3)


@dataclass(frozen=True)
class Seed:
    """A seed point, given either as voxel indices or as a patient position.

    Parameters
    ----------
    x, y, z : float
        Column, row and slice index when ``patient`` is False; LPS patient
        coordinates in millimetres (DICOM convention) when it is True.
    patient : bool
        Whether the coordinates are patient millimetres.
    """

    x: float
    y: float
    z: float
    patient: bool = False

    @classmethod
    def parse(cls, text: str, *, patient: bool = False) -> Seed:
        """Parse ``"x,y,z"`` (commas or spaces)."""
        parts = text.replace(",", " ").split()
        try:
            x, y, z = (float(p) for p in parts)
        except ValueError:
            raise ProcessingError(f"seed {text!r} is not three numbers x,y,z") from None
        return cls(x, y, z, patient)

    def __str__(self) -> str:
        where = f"{self.x:g},{self.y:g},{self.z:g}"
        return f"seed at LPS {where} mm" if self.patient else f"seed at voxel {where}"

    def index(self, volume: hd.Volume) -> tuple[int, int, int]:
        """Return the (slice, row, column) array index of this seed in ``volume``."""
        if self.patient:
            point = np.array([[self.x, self.y, self.z]])
            ijk = volume.map_reference_to_indices(point, round_output=True)
            index = tuple(int(v) for v in ijk[0])
        else:
            index = (round(self.z), round(self.y), round(self.x))
        shape = volume.spatial_shape
        if not all(0 <= i < n for i, n in zip(index, shape, strict=True)):
            raise ProcessingError(f"{self} lies outside the volume (shape {shape})")
        return (index[0], index[1], index[2])


def _check(volume: hd.Volume) -> npt.NDArray[Any]:
    if volume.number_of_channel_dimensions != 0 or volume.array.ndim != 3:
        shape = volume.array.shape
        raise ProcessingError(f"expected a single-channel 3D volume, got shape {shape}")
    return volume.array


def _mask(volume: hd.Volume, array: npt.NDArray[Any]) -> hd.Volume:
    return volume.with_array(np.ascontiguousarray(array, dtype=bool))


def threshold(volume: hd.Volume, low: float, high: float) -> hd.Volume:
    """Return the mask of voxels with ``low <= value <= high``.

    Parameters
    ----------
    volume : highdicom.Volume
        Intensities (for CT, Hounsfield units after the modality LUT).
    low, high : float
        Inclusive bounds.

    Returns
    -------
    highdicom.Volume
        Boolean mask with the geometry of ``volume``.
    """
    if low > high:
        raise ProcessingError(f"threshold low {low} is above high {high}")
    array = _check(volume)
    return _mask(volume, (array >= low) & (array <= high))


def region_grow(volume: hd.Volume, seeds: Sequence[Seed], low: float, high: float) -> hd.Volume:
    """Grow regions from seeds through connected voxels within ``[low, high]``.

    The thresholded mask is split into 26-connected components
    (``scipy.ndimage.label``) and the components that contain a seed are kept.

    Raises
    ------
    ProcessingError
        When no seed is given, or a seed lies outside the threshold range.
    """
    if not seeds:
        raise ProcessingError("region growing needs at least one seed")
    inside = threshold(volume, low, high).array
    labels, _ = ndimage.label(inside, structure=_FULL)
    keep = set()
    for seed in seeds:
        label = int(labels[seed.index(volume)])
        if label == 0:
            raise ProcessingError(f"{seed} has a value outside [{low:g}, {high:g}]")
        keep.add(label)
    return _mask(volume, np.isin(labels, sorted(keep)))


def flood(volume: hd.Volume, seed: Seed, tolerance: float) -> hd.Volume:
    """Flood fill from one seed: connected voxels within ``tolerance`` of the seed value.

    Uses :func:`skimage.segmentation.flood` with full connectivity.
    """
    array = _check(volume)
    mask = segmentation.flood(array, seed.index(volume), tolerance=tolerance, connectivity=3)
    return _mask(volume, mask)


def grow_from_seeds(volume: hd.Volume, markers: hd.Volume) -> hd.Volume:
    """Competitive region growing from labelled seeds (Slicer's "Grow from seeds").

    Each non-zero label in ``markers`` grows over the intensity landscape
    until it meets another label: a marker-based watershed
    (:func:`skimage.segmentation.watershed`) on the Sobel gradient magnitude.

    Parameters
    ----------
    volume : highdicom.Volume
        Intensities.
    markers : highdicom.Volume
        Integer labels with the same geometry; 0 is unlabelled.

    Returns
    -------
    highdicom.Volume
        A label map (uint16) with every voxel assigned to one of the seed labels.
    """
    array = _check(volume)
    seeds = np.asarray(_check(markers))
    if not volume.geometry_equal(markers):
        raise ProcessingError("seed label map does not have the volume's geometry")
    if not np.any(seeds):
        raise ProcessingError("seed label map has no labelled voxel")
    gradient = filters.sobel(array.astype(np.float32))
    labels = segmentation.watershed(gradient, markers=seeds.astype(np.int32))
    return volume.with_array(labels.astype(np.uint16))


def keep_largest_island(mask: hd.Volume) -> hd.Volume:
    """Keep only the largest 26-connected component of a mask."""
    labels, count = ndimage.label(_check(mask), structure=_FULL)
    if count == 0:
        return _mask(mask, labels > 0)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return _mask(mask, labels == int(np.argmax(sizes)))


def fill_holes(mask: hd.Volume, *, per_slice: bool = False) -> hd.Volume:
    """Fill enclosed holes (``scipy.ndimage.binary_fill_holes``).

    Parameters
    ----------
    mask : highdicom.Volume
        Boolean mask.
    per_slice : bool
        Fill holes in each slice separately (holes open in 3D but closed in-plane).
    """
    array = _check(mask).astype(bool)
    if per_slice:
        filled = np.stack([ndimage.binary_fill_holes(plane) for plane in array])
    else:
        filled = ndimage.binary_fill_holes(array)
    return _mask(mask, filled)


def smooth_mask(mask: hd.Volume, sigma_mm: float) -> hd.Volume:
    """Smooth a mask's surface: Gaussian blur (sigma in mm per axis) thresholded at 0.5."""
    if sigma_mm <= 0:
        raise ProcessingError(f"smoothing sigma must be positive, got {sigma_mm}")
    array = _check(mask).astype(np.float32)
    sigma = [sigma_mm / float(s) for s in mask.spacing]
    return _mask(mask, ndimage.gaussian_filter(array, sigma=sigma) >= 0.5)
