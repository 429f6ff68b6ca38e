"""RT Structure Set ROIs rasterised on an image grid (no web, no database).

Each closed planar contour is filled with :func:`skimage.draw.polygon` (it fills the
pixels whose centres lie inside the polygon, the usual convention for RT structure
rasterisation), and contours of one ROI on one slice are combined with exclusive-or, so
an inner contour is a hole as PS3.3 C.8.8.6 describes. A contour off every slice of the
grid (more than half a slice away) or not parallel to its slices is left out and counted.

Used by the workstation viewer (:mod:`dicomstation.web.viewer_rt`) and by the pipeline
step that rebuilds a viewer's RTSTRUCT label map (:mod:`dicomstation.pipeline.rt_labelmap`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from skimage import draw as _draw

from dicomstation.errors import ProcessingError

__all__ = [
    "MAX_RASTER",
    "RasterisedRoi",
    "rasterise",
    "rasterised_rois",
    "referenced_series",
    "roi_label_map",
]

_draw_any: Any = _draw  # scikit-image ships no type hints
MAX_RASTER = 2 * 2**30  # one structure set's masks: refused beyond (ROIs x voxels bytes)
_PLANAR_TOLERANCE = 0.05  # voxels: a contour's slice index may vary this much


@dataclass(frozen=True)
class RasterisedRoi:
    """One ROI on a grid: number, name, ROI Display Color (RGB), mask, contours left out."""

    number: int
    name: str
    colour: tuple[int, int, int]
    mask: np.ndarray
    skipped: int


def referenced_series(ds: pydicom.Dataset) -> list[str]:
    """Series Instance UIDs an RTSTRUCT's contours were drawn on."""
    return [
        str(series.SeriesInstanceUID)
        for frame in ds.get("ReferencedFrameOfReferenceSequence", [])
        for study in frame.get("RTReferencedStudySequence", [])
        for series in study.get("RTReferencedSeriesSequence", [])
        if "SeriesInstanceUID" in series
    ]


def _fill(volume: hd.Volume, contours: Iterable[Any]) -> tuple[np.ndarray, int]:
    """Even-odd filled mask of closed planar contours on ``volume``'s grid; skipped count."""
    shape = volume.spatial_shape
    mask = np.zeros(shape, dtype=bool)
    skipped = 0
    for contour in contours:
        data = np.asarray(contour.get("ContourData", []), dtype=float)
        kind = str(contour.get("ContourGeometricType", "CLOSED_PLANAR"))
        if kind != "CLOSED_PLANAR" or data.size < 9 or data.size % 3:
            skipped += 1
            continue
        index = volume.map_reference_to_indices(data.reshape(-1, 3))
        k = float(np.round(index[:, 0].mean()))
        if np.ptp(index[:, 0]) > _PLANAR_TOLERANCE or not -0.5 <= k < shape[0] - 0.5:
            skipped += 1
            continue
        rows, cols = _draw_any.polygon(index[:, 1], index[:, 2], shape=shape[1:])
        plane = np.zeros(shape[1:], dtype=bool)
        plane[rows, cols] = True
        mask[int(k)] ^= plane
    return mask, skipped


def rasterised_rois(
    ds: pydicom.Dataset, volume: hd.Volume, numbers: Sequence[int] | None = None
) -> dict[int, RasterisedRoi]:
    """The ROIs of an RTSTRUCT (those numbered ``numbers``, all by default) on ``volume``'s grid.

    Raises
    ------
    ProcessingError
        When the masks would take more than :data:`MAX_RASTER` bytes.
    """
    names = {
        int(r.ROINumber): str(r.get("ROIName", "")) for r in ds.get("StructureSetROISequence", [])
    }
    wanted = set(numbers) if numbers else None
    rois = [
        roi
        for roi in ds.get("ROIContourSequence", [])
        if wanted is None or int(roi.ReferencedROINumber) in wanted
    ]
    size = len(rois) * int(np.prod(volume.spatial_shape))
    if size > MAX_RASTER:
        uid = ds.get("SeriesInstanceUID", "")
        raise ProcessingError(f"RTSTRUCT {uid}: {size} bytes of ROI masks is too many")
    out = {}
    for roi in rois:
        number = int(roi.ReferencedROINumber)
        colour = tuple(int(v) for v in roi.get("ROIDisplayColor", [255, 0, 0])[:3])
        mask, skipped = _fill(volume, roi.get("ContourSequence", []))
        name = names.get(number, f"ROI {number}")
        out[number] = RasterisedRoi(number, name, (colour[0], colour[1], colour[2]), mask, skipped)
    return out


def rasterise(
    ds: pydicom.Dataset, volume: hd.Volume
) -> dict[int, tuple[str, tuple[int, int, int], np.ndarray, int]]:
    """Every ROI of an RTSTRUCT on ``volume``'s grid: number -> (name, colour, mask, skipped)."""
    return {
        n: (r.name, r.colour, r.mask, r.skipped) for n, r in rasterised_rois(ds, volume).items()
    }


def roi_label_map(rois: Sequence[RasterisedRoi], shape: Sequence[int]) -> np.ndarray:
    """The ROIs as one uint16 label map: ROI ``i`` of ``rois`` is label ``i + 1``.

    Where ROIs overlap the later one wins; the union of the masks is kept exactly.
    """
    labels = np.zeros(tuple(shape), dtype=np.uint16)
    for value, roi in enumerate(rois, start=1):
        labels[roi.mask] = value
    return labels
