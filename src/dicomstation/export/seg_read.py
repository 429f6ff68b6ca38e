"""DICOM SEG read back: each segment as a mask (or one label map) on a reference grid.

Any writer's SEG (highdicom, dcmqi...) in a patient frame of reference is placed with
highdicom's ``get_volume`` and matched to the reference volume; a SEG of one projection
image (no frame of reference: CR, DX...) is read by its source image.
"""

from __future__ import annotations

import sqlite3

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from dicomstation.errors import ExportError

__all__ = ["read_seg_labelmap", "read_seg_masks"]

# Positions travel as decimal strings (16 characters): allow that much rounding (mm).
_TOLERANCE = 1e-3


def _as_seg(dataset: Dataset) -> hd.seg.Segmentation:
    if isinstance(dataset, hd.seg.Segmentation):
        return dataset
    try:
        return hd.seg.Segmentation.from_dataset(dataset, copy=False)
    except (ValueError, AttributeError, KeyError) as exc:
        uid = dataset.get("SOPInstanceUID", "?")
        raise ExportError(f"{uid} is not a readable DICOM SEG: {exc}") from exc


def read_seg_masks(
    dataset: Dataset, reference: hd.Volume, *, threshold: float = 0.5
) -> dict[int, hd.Volume]:
    """Read each segment of a SEG as a boolean mask aligned with ``reference``.

    Parameters
    ----------
    dataset : pydicom.Dataset
        A Segmentation Storage instance from any writer (highdicom, dcmqi...),
        BINARY or FRACTIONAL (fractional values are compared with ``threshold``).
    reference : highdicom.Volume
        The volume of the segmented series; every mask has its geometry.

    Returns
    -------
    dict of int to highdicom.Volume
        Masks by segment number (segments may overlap).

    Raises
    ------
    ExportError
        When a segment does not lie on the reference's voxel grid, or part of
        it falls outside the reference volume.
    """
    seg = _as_seg(dataset)
    image_uid = _projection_source(seg)
    if image_uid is not None:
        return _projection_masks(seg, image_uid, reference, threshold)
    out = {}
    for number in seg.segment_numbers:
        try:
            volume = seg.get_volume(segment_numbers=[number], combine_segments=False)
            mask = volume.squeeze_channel()
            mask = mask.with_array(np.asarray(mask.array) > threshold)
            aligned = mask.match_geometry(reference, tol=_TOLERANCE)
        except (ValueError, RuntimeError, sqlite3.Error) as exc:  # highdicom's frame index
            raise ExportError(
                f"segment {number} of SEG {seg.SOPInstanceUID} cannot be aligned: {exc}"
            ) from exc
        if int(np.count_nonzero(aligned.array)) != int(np.count_nonzero(mask.array)):
            raise ExportError(
                f"segment {number} of SEG {seg.SOPInstanceUID} extends outside the reference volume"
            )
        out[int(number)] = aligned
    return out


def _projection_source(seg: hd.seg.Segmentation) -> str | None:
    """The one image a SEG without a frame of reference segments (a projection image)."""
    if "FrameOfReferenceUID" in seg:
        return None
    images = [
        str(image.ReferencedSOPInstanceUID)
        for series in seg.get("ReferencedSeriesSequence", [])
        for image in series.get("ReferencedInstanceSequence", [])
    ]
    return images[0] if len(images) == 1 else None


def _projection_masks(
    seg: hd.seg.Segmentation, image_uid: str, reference: hd.Volume, threshold: float
) -> dict[int, hd.Volume]:
    """The segments of a SEG of one projection image, on that image's grid (``reference``)."""
    try:
        pixels = seg.get_pixels_by_source_instance([image_uid], ignore_spatial_locations=True)
    except (ValueError, RuntimeError, KeyError, sqlite3.Error) as exc:
        raise ExportError(
            f"SEG {seg.SOPInstanceUID} cannot be read onto {image_uid}: {exc}"
        ) from exc
    if tuple(pixels.shape[:3]) != tuple(reference.spatial_shape):
        raise ExportError(
            f"SEG {seg.SOPInstanceUID} ({pixels.shape[1]}x{pixels.shape[2]}) is not on the grid "
            f"of image {image_uid} ({reference.spatial_shape[1]}x{reference.spatial_shape[2]})"
        )
    return {
        int(number): reference.with_array(np.asarray(pixels[..., i]) > threshold)
        for i, number in enumerate(seg.segment_numbers)
    }


def read_seg_labelmap(dataset: Dataset, reference: hd.Volume) -> hd.Volume:
    """Read a SEG as an integer label map aligned voxel-for-voxel with ``reference``.

    Each voxel holds the number of the segment it belongs to (0 for none).

    Raises
    ------
    ExportError
        When segments overlap (use :func:`read_seg_masks`) or the SEG does not
        lie on the reference's voxel grid.
    """
    masks = read_seg_masks(dataset, reference)
    labels = np.zeros(reference.spatial_shape, dtype=np.uint16)
    for number, mask in masks.items():
        inside = np.asarray(mask.array, dtype=bool)
        if np.any(labels[inside]):
            uid = dataset.get("SOPInstanceUID", "?")
            raise ExportError(f"segments of SEG {uid} overlap: not a label map (read the masks)")
        labels[inside] = number
    return reference.with_array(labels)
