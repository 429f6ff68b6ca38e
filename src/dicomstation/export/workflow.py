"""Database-to-database workflows: load a series, process, export, import the results.

These are what ``dicomstation segment`` / ``dicomstation export ...`` (and the
web UI) run: every function reads its sources from the local database and
writes every new record back into it with :func:`import_into`; sending is then
``send`` (or :func:`send_instances`) through the generic node interface.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from dicomstation import processing as proc
from dicomstation.errors import ExportError, NotFoundError
from dicomstation.export.bundle import SceneSegment, SceneSegmentation
from dicomstation.export.common import ExportOptions, SourceSeries, import_into
from dicomstation.export.seg import (
    PALETTE,
    Algorithm,
    Segment,
    SegmentInfo,
    build_seg,
    read_seg_masks,
)
from dicomstation.export.sr import build_sr
from dicomstation.export.terms import Term, term
from dicomstation.processing.stats import SegmentStatistics

if TYPE_CHECKING:
    from dicomstation.database import Database
    from dicomstation.models import TransferReport
    from dicomstation.nodes import DicomNode

__all__ = [
    "Derivation",
    "Exported",
    "SegmentRequest",
    "derive",
    "export_and_import",
    "labelmap_from_file",
    "scene_segmentation",
    "seg_source",
    "seg_statistics",
    "segment_infos",
    "segment_series",
    "send_instances",
    "source_from_db",
]


@dataclass(frozen=True)
class Exported:
    """What an export wrote into the database.

    Attributes
    ----------
    kind : str
        ``seg``, ``sr``, ``sc``, ``derived`` or ``bundle``.
    series_uid : str
        The new series.
    sop_uids : tuple of str
        Its instances.
    statistics : tuple of SegmentStatistics
        For segmentations: the statistics reported in the SR.
    """

    kind: str
    series_uid: str
    sop_uids: tuple[str, ...]
    statistics: tuple[SegmentStatistics, ...] = field(default=())


def source_from_db(db: Database, series_uid: str) -> SourceSeries:
    """Load a series of the local database as an export source."""
    files = db.series_files(series_uid)
    if not files:
        raise NotFoundError(f"series {series_uid} is not in the local database {db.root}")
    return SourceSeries.from_files(files)


def export_and_import(db: Database, kind: str, datasets: Sequence[Dataset]) -> Exported:
    """Import exported datasets into ``db``; raise ExportError if any was refused."""
    report = import_into(db, datasets)
    if report.failed:
        raise ExportError(f"the database refused exported {kind} files: {dict(report.failed)}")
    uids = tuple(str(ds.SOPInstanceUID) for ds in datasets)
    return Exported(kind, str(datasets[0].SeriesInstanceUID), uids)


@dataclass(frozen=True)
class SegmentRequest:
    """A threshold segmentation, optionally grown from seeds and cleaned up.

    Parameters
    ----------
    low, high : float
        Threshold range (inclusive).
    seeds : tuple of Seed
        Keep only the thresholded regions connected to these seeds.
    largest : bool
        Keep the largest island only.
    fill_holes : bool
        Fill enclosed holes.
    smooth_mm : float or None
        Smooth the surface with this Gaussian sigma (mm).
    label : str
        Segment label.
    term : Term
        Coded category and type.
    color : tuple of 3 int or None
        Display colour.
    """

    low: float
    high: float
    seeds: tuple[proc.Seed, ...] = ()
    largest: bool = False
    fill_holes: bool = False
    smooth_mm: float | None = None
    label: str = "Segment"
    term: Term = field(default_factory=lambda: term("tissue"))
    color: tuple[int, int, int] | None = None

    def mask(self, volume: hd.Volume) -> hd.Volume:
        """Run the request on ``volume``."""
        if self.seeds:
            mask = proc.region_grow(volume, self.seeds, self.low, self.high)
        else:
            mask = proc.threshold(volume, self.low, self.high)
        if self.largest:
            mask = proc.keep_largest_island(mask)
        if self.fill_holes:
            mask = proc.fill_holes(mask)
        if self.smooth_mm:
            mask = proc.smooth_mask(mask, self.smooth_mm)
        return mask

    def describe(self) -> str:
        """A one-line description of the algorithm and its parameters."""
        steps = [f"threshold {self.low:g}..{self.high:g}"]
        steps += ["seeded region growing"] if self.seeds else []
        steps += ["largest island"] if self.largest else []
        steps += ["fill holes"] if self.fill_holes else []
        steps += [f"smooth {self.smooth_mm:g} mm"] if self.smooth_mm else []
        return "dicomstation " + ", ".join(steps)


def segment_series(
    db: Database, series_uid: str, request: SegmentRequest, options: ExportOptions | None = None
) -> tuple[Exported, Exported]:
    """Segment a series of the database; import its SEG and statistics SR into the database.

    Returns
    -------
    (Exported, Exported)
        The SEG and the SR (the SR's ``statistics`` hold the numbers).
    """
    options = options or ExportOptions()
    source = source_from_db(db, series_uid)
    mask = request.mask(source.volume)
    segment = Segment(
        request.label,
        mask,
        request.term.category,
        request.term.property_type,
        request.color,
        Algorithm.SEMIAUTOMATIC if request.seeds else Algorithm.AUTOMATIC,
        request.describe()[:64],
    )
    seg = build_seg(source, [segment], options)
    stats = proc.segment_statistics(source.volume, {1: mask}, {1: request.label})
    sr = build_sr(seg, source, stats, _sr_options(options))
    report = import_into(db, [seg, sr])  # both or neither reach the database
    if report.failed:
        raise ExportError(f"the database refused exported SEG/SR files: {dict(report.failed)}")
    return (
        Exported("seg", str(seg.SeriesInstanceUID), (str(seg.SOPInstanceUID),)),
        Exported("sr", str(sr.SeriesInstanceUID), (str(sr.SOPInstanceUID),), stats),
    )


def _sr_options(options: ExportOptions) -> ExportOptions:
    """SR options: a separate series, so the SEG and SR do not share a series number."""
    if options.series_number is None:
        return options
    return ExportOptions(**{**options.__dict__, "series_number": options.series_number + 1})


def seg_source(db: Database, seg_uid: str) -> tuple[Dataset, SourceSeries]:
    """Read a SEG of the database and load the image series it segments."""
    seg = pydicom.dcmread(db.instance_path(seg_uid))
    if seg.get("Modality") != "SEG" or "ReferencedSeriesSequence" not in seg:
        raise ExportError(f"{seg_uid} is not a DICOM SEG with a referenced series")
    return seg, source_from_db(db, str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID))


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


def seg_statistics(
    db: Database, seg_uid: str
) -> tuple[Dataset, SourceSeries, tuple[SegmentStatistics, ...]]:
    """Statistics of every segment of a SEG of the database over the series it segments."""
    seg, source = seg_source(db, seg_uid)
    masks = read_seg_masks(seg, source.volume)
    labels = {int(s.SegmentNumber): str(s.SegmentLabel) for s in seg.SegmentSequence}
    return seg, source, proc.segment_statistics(source.volume, masks, labels)


def segment_infos(
    labels: hd.Volume, named: Mapping[int, tuple[str, Term]] | None = None
) -> list[SegmentInfo]:
    """One description per label value 1..max of ``labels`` (names and terms from ``named``)."""
    named = named or {}
    infos = []
    for number in range(1, int(np.asarray(labels.array).max(initial=0)) + 1):
        label, coded = named.get(number, (f"Segment {number}", term("tissue")))
        color = PALETTE[(number - 1) % len(PALETTE)]
        infos.append(
            SegmentInfo(label, coded.category, coded.property_type, color, Algorithm.MANUAL)
        )
    return infos


def scene_segmentation(db: Database, seg_uid: str) -> SceneSegmentation:
    """A SEG of the database as a scene label map on its source series' grid."""
    seg, source = seg_source(db, seg_uid)
    masks = read_seg_masks(seg, source.volume)
    labels = np.zeros(source.volume.spatial_shape, dtype=np.uint16)
    for number, mask in masks.items():
        labels[np.asarray(mask.array, dtype=bool)] = number  # overlaps: the highest wins
    segments = tuple(
        SceneSegment(
            int(item.SegmentNumber),
            str(item.SegmentLabel),
            _display_rgb(item, int(item.SegmentNumber)),
        )
        for item in seg.SegmentSequence
    )
    name = str(seg.get("SeriesDescription") or "Segmentation")
    return SceneSegmentation(name, source.volume.with_array(labels), segments, seg_uid)


def _display_rgb(item: Dataset, number: int) -> tuple[int, int, int]:
    if "RecommendedDisplayCIELabValue" not in item:
        return PALETTE[(number - 1) % len(PALETTE)]
    red, green, blue = hd.color.CIELabColor.from_dicom_value(
        list(item.RecommendedDisplayCIELabValue)
    ).to_rgb()
    return int(red), int(green), int(blue)


@dataclass(frozen=True)
class Derivation:
    """A processed volume and how it was made (for a derived series)."""

    volume: hd.Volume
    code: Code
    description: str


def derive(
    volume: hd.Volume,
    *,
    smooth_mm: float | None = None,
    median: int | None = None,
    spacing: Sequence[float] | None = None,
) -> Derivation:
    """Apply exactly one of Gaussian smoothing, median filtering or resampling."""
    if sum(x is not None for x in (smooth_mm, median, spacing)) != 1:
        raise ExportError("give exactly one of smoothing, median or resampling")
    if smooth_mm is not None:
        return Derivation(
            proc.gaussian_smooth(volume, smooth_mm),
            codes.DCM.GaussianBlur,
            f"Gaussian smoothing, sigma {smooth_mm:g} mm",
        )
    if median is not None:
        return Derivation(
            proc.median_smooth(volume, median), codes.DCM.Smoothing, f"Median filter {median}"
        )
    new = tuple(spacing or ())
    text = "Resampled to " + " x ".join(f"{v:g}" for v in new) + " mm"
    return Derivation(proc.resample(volume, new), codes.DCM.SpatialResampling, text)


def send_instances(db: Database, node: DicomNode, sop_uids: Sequence[str]) -> TransferReport:
    """Send instances of the database to a node (STOW-RS or C-STORE, whichever it speaks)."""
    return node.store([db.instance_path(uid) for uid in sop_uids])
