"""A classical CT baseline: body, lungs and bone from Hounsfield units.

No model, no weights: thresholds on HU, morphology and connected components
(scipy.ndimage), so the result is reproducible and fast, and it is a baseline
to compare model segmenters against.

- **Body**: voxels above ``body_hu`` (air is about -1000 HU, fat -100), each
  axial slice's holes filled (so the lungs and bowel gas are inside), opened
  in-plane by ``opening_mm`` to cut thin bridges to the table and blankets, then the
  largest 26-connected component.
- **Lungs**: voxels inside the body from ``lung_hu[0]`` to ``lung_hu[1]``,
  closed in-plane by ``closing_mm`` (vessels), the components of at least
  ``min_lung_ml``; at most the two largest are kept.
- **Bone**: voxels inside the body at ``bone_hu`` or more, components of at
  least ``min_bone_ml``.

The three masks may overlap (the lungs and bone are inside the body);
:meth:`CTMasks.labels` turns them into one label map where the body label is
what is neither lung nor bone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from dicomstation.errors import ProcessingError

__all__ = ["BODY", "BONE", "LUNGS", "CTBaselineParams", "CTMasks", "ct_baseline_masks"]

#: Label values of :meth:`CTMasks.labels`.
BODY, LUNGS, BONE = 1, 2, 3

_FULL = ndimage.generate_binary_structure(3, 3)
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class CTBaselineParams:
    """Thresholds (HU) and morphology sizes of the CT baseline.

    Parameters
    ----------
    body_hu : float
        Body threshold: voxels above it are body.
    lung_hu : tuple of 2 float
        Lung parenchyma range (inclusive).
    bone_hu : float
        Bone threshold: voxels at or above it are bone.
    opening_mm, closing_mm : float
        Radius of the body opening and of the lung closing (0: none).
    min_lung_ml, min_bone_ml : float
        Smallest lung and bone component kept (millilitres).
    """

    body_hu: float = -500.0
    lung_hu: tuple[float, float] = (-1000.0, -400.0)
    bone_hu: float = 300.0
    opening_mm: float = 2.0
    closing_mm: float = 2.0
    min_lung_ml: float = 5.0
    min_bone_ml: float = 0.2

    def __post_init__(self) -> None:
        if self.lung_hu[0] > self.lung_hu[1]:
            raise ProcessingError(f"CT baseline: lung range {self.lung_hu} is empty")
        if not self.body_hu < self.bone_hu:
            raise ProcessingError(
                f"CT baseline: need body ({self.body_hu:g}) < bone ({self.bone_hu:g}) HU"
            )
        if min(self.opening_mm, self.closing_mm, self.min_lung_ml, self.min_bone_ml) < 0:
            raise ProcessingError("CT baseline: sizes must not be negative")


@dataclass(frozen=True)
class CTMasks:
    """The baseline's masks (boolean arrays on the volume's grid) and its voxel volume (ml)."""

    body: Mask
    lungs: Mask
    bone: Mask
    voxel_ml: float

    def volume_ml(self, which: str) -> float:
        """The volume of ``body``, ``lungs`` or ``bone`` in millilitres."""
        mask: Mask = getattr(self, which)
        return float(mask.sum()) * self.voxel_ml

    def labels(self) -> npt.NDArray[np.uint16]:
        """One label map: BONE, then LUNGS, then BODY for the rest of the body."""
        out = np.zeros(self.body.shape, dtype=np.uint16)
        out[self.body] = BODY
        out[self.lungs] = LUNGS
        out[self.bone] = BONE
        return out


def ct_baseline_masks(volume: hd.Volume, params: CTBaselineParams | None = None) -> CTMasks:
    """Segment body, lungs and bone of a CT volume in HU.

    Parameters
    ----------
    volume : highdicom.Volume
        A CT volume (rescaled to HU), axes (slices, rows, columns).
    params : CTBaselineParams or None
        Thresholds and sizes (default: :class:`CTBaselineParams`).

    Returns
    -------
    CTMasks

    Raises
    ------
    ProcessingError
        When the volume is not a single-channel 3D volume or no body is found.
    """
    params = params or CTBaselineParams()
    array = np.asarray(volume.array)
    if array.ndim != 3:
        raise ProcessingError(f"CT baseline needs a 3D greyscale volume, got shape {array.shape}")
    spacing = tuple(float(s) for s in volume.spacing)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    body = _body(array, spacing, params)
    if not body.any():
        raise ProcessingError(f"CT baseline: no voxel above {params.body_hu:g} HU (is it CT?)")
    low, high = params.lung_hu
    lungs = body & (array >= low) & (array <= high)
    lungs = _close(lungs, spacing, params.closing_mm) & body
    lungs = _components(lungs, params.min_lung_ml / voxel_ml, keep=2)
    bone = body & (array >= params.bone_hu)
    bone = _components(bone, params.min_bone_ml / voxel_ml, keep=None)
    return CTMasks(body, lungs, bone, voxel_ml)


def _body(array: npt.NDArray[Any], spacing: tuple[float, ...], p: CTBaselineParams) -> Mask:
    above: Mask = np.asarray(array > p.body_hu)
    filled = np.stack([ndimage.binary_fill_holes(plane) for plane in above]).astype(bool)
    opened = _open(filled, spacing, p.opening_mm)
    largest = _components(opened, 1.0, keep=1)
    result: Mask = np.asarray(ndimage.binary_fill_holes(largest), dtype=bool)
    return result


def _ball(spacing: tuple[float, ...], radius_mm: float) -> Mask:
    """An in-plane disk (one slice thick: slices may be thick, and few)."""
    half = [0] + [int(radius_mm // s) for s in spacing[1:]]
    grids = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    dist = sum((g * s / radius_mm) ** 2 for g, s in zip(grids, spacing, strict=True))
    ball: Mask = np.asarray(dist <= 1.0)
    return ball


def _open(mask: Mask, spacing: tuple[float, ...], radius_mm: float) -> Mask:
    if radius_mm <= 0 or not mask.any():
        return mask
    return np.asarray(ndimage.binary_opening(mask, _ball(spacing, radius_mm)), dtype=bool)


def _close(mask: Mask, spacing: tuple[float, ...], radius_mm: float) -> Mask:
    if radius_mm <= 0 or not mask.any():
        return mask
    ball = _ball(spacing, radius_mm)
    pad = max(ball.shape)
    padded = np.pad(mask, pad)
    closed = ndimage.binary_closing(padded, ball)
    return np.asarray(closed[(slice(pad, -pad),) * 3], dtype=bool)


def _components(mask: Mask, min_voxels: float, keep: int | None) -> Mask:
    """The 26-connected components of at least ``min_voxels``, the ``keep`` largest."""
    labels, count = ndimage.label(mask, structure=_FULL)
    if count == 0:
        return np.zeros(mask.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())[1:]
    order = np.argsort(sizes)[::-1]
    chosen = [int(i) + 1 for i in order if sizes[i] >= min_voxels]
    if keep is not None:
        chosen = chosen[:keep]
    return np.isin(labels, chosen)
