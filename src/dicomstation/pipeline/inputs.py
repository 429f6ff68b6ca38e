"""Inputs of steps and exports read from the local database or files.

A series as an export source, an existing SEG as a :class:`Segmentation` (or a
scene label map), and a label map file as a segmenter (``labelmap``), so a
segmentation made elsewhere (a model run outside, a manual edit) goes through
the same export path as one made here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset

from dicomstation.errors import ExportError, InvalidDicomError, NotFoundError
from dicomstation.export.bundle import SceneSegmentation
from dicomstation.export.common import SourceSeries
from dicomstation.export.seg import PALETTE, Algorithm
from dicomstation.export.seg_read import read_seg_masks
from dicomstation.export.terms import Term, term
from dicomstation.pipeline.builtin_exports import scene_of
from dicomstation.pipeline.segmenters import Segmentation, SegmentDescription, register_segmenter

if TYPE_CHECKING:
    from dicomstation.database import Database

__all__ = [
    "LabelmapSegmenter",
    "labelmap_from_file",
    "read_seg",
    "scene_segmentation",
    "series_source",
]


def series_source(db: Database, series_uid: str) -> SourceSeries:
    """A series of the local database as an export source (NotFoundError when absent)."""
    files = db.series_files(series_uid)
    if not files:
        raise NotFoundError(f"series {series_uid} is not in the local database {db.root}")
    return SourceSeries.from_files(files)


def read_seg(db: Database, seg_uid: str) -> tuple[Dataset, SourceSeries, Segmentation]:
    """A SEG of the database, the series it segments, and its segments on that series' grid."""
    try:
        seg = pydicom.dcmread(db.instance_path(seg_uid))
    except (pydicom.errors.InvalidDicomError, OSError) as exc:
        raise InvalidDicomError(str(seg_uid), str(exc)) from exc
    if seg.get("Modality") != "SEG" or "ReferencedSeriesSequence" not in seg:
        raise ExportError(f"{seg_uid} is not a DICOM SEG with a referenced series")
    source = series_source(db, str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID))
    masks = read_seg_masks(seg, source.volume)
    labels = np.zeros(source.volume.spatial_shape, dtype=np.uint16)
    for number, mask in masks.items():
        labels[np.asarray(mask.array, dtype=bool)] = number  # overlaps: the highest wins
    segments = tuple(
        SegmentDescription(
            int(item.SegmentNumber),
            str(item.SegmentLabel),
            color=_display_rgb(item, int(item.SegmentNumber)),
            algorithm=Algorithm.MANUAL,
        )
        for item in seg.SegmentSequence
    )
    return seg, source, Segmentation(source.volume.with_array(labels), segments)


def scene_segmentation(db: Database, seg_uid: str) -> SceneSegmentation:
    """A SEG of the database as a scene label map on its source series' grid."""
    seg, _source, found = read_seg(db, seg_uid)
    return scene_of(found, str(seg.get("SeriesDescription") or "Segmentation"), seg_uid)


def _display_rgb(item: Dataset, number: int) -> tuple[int, int, int]:
    if "RecommendedDisplayCIELabValue" not in item:
        return PALETTE[(number - 1) % len(PALETTE)]
    red, green, blue = hd.color.CIELabColor.from_dicom_value(
        list(item.RecommendedDisplayCIELabValue)
    ).to_rgb()
    return int(red), int(green), int(blue)


def labelmap_from_file(path: Path, reference: hd.Volume) -> hd.Volume:
    """Read a NIfTI or NRRD label map and align it with ``reference`` (no resampling)."""
    name = path.name.lower()
    try:
        if name.endswith((".nii", ".nii.gz")):
            import nibabel

            volume = hd.Volume.from_nibabel(nibabel.load(str(path)))
        elif name.endswith(".nrrd"):
            volume = _nrrd_volume(path)
        else:
            raise ExportError(f"{path}: label maps must be NIfTI (.nii[.gz]) or NRRD (.nrrd)")
        aligned = volume.match_geometry(reference, tol=1e-3)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ExportError(f"{path}: cannot use as a label map of this series: {exc}") from exc
    labels = np.asarray(aligned.array)
    if not np.array_equal(labels, np.round(labels)) or labels.min(initial=0) < 0:
        raise ExportError(f"{path}: a label map must hold non-negative integers")
    return reference.with_array(labels.astype(np.uint16))


def _nrrd_volume(path: Path) -> hd.Volume:
    import nrrd

    data, header = nrrd.read(str(path))
    space = str(header.get("space", "left-posterior-superior"))
    directions = np.asarray(header["space directions"], dtype=float)
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = directions[2], directions[1], directions[0]
    affine[:3, 3] = np.asarray(header.get("space origin", np.zeros(3)), dtype=float)
    if space in ("right-anterior-superior", "RAS"):
        affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    return hd.Volume(np.ascontiguousarray(data.transpose(2, 1, 0)), affine, "PATIENT")


@dataclass(frozen=True)
class LabelmapSegmenter:
    """A segmentation made elsewhere: a NIfTI/NRRD label map on the series' grid.

    Parameters
    ----------
    path : Path
        The label map file.
    names : mapping of int to (str, Term)
        Label and term per label value (default ``Segment N``, tissue).
    """

    path: Path
    names: Mapping[int, tuple[str, Term]] = field(default_factory=dict)

    def segment(self, volume: hd.Volume) -> Segmentation:
        """Read the file, aligned with ``volume``; one segment per label value 1..max."""
        labels = labelmap_from_file(self.path, volume)
        highest = int(np.asarray(labels.array).max(initial=0))
        segments = tuple(
            SegmentDescription(
                n,
                *self.names.get(n, (f"Segment {n}", term("tissue"))),
                algorithm=Algorithm.MANUAL,
                algorithm_name="label map file",
            )
            for n in range(1, highest + 1)
        )
        return Segmentation(labels, segments)


def _labelmap(params: Mapping[str, Any]) -> LabelmapSegmenter:
    names = {
        int(k): (str(v.get("label", f"Segment {k}")), term(str(v.get("term", "tissue"))))
        for k, v in dict(params.get("segments", {})).items()
    }
    return LabelmapSegmenter(Path(str(params["path"])), names)


register_segmenter("labelmap", _labelmap)
