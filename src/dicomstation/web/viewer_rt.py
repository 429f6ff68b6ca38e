"""RTSTRUCT in the workstation viewer: ROI contours on the referenced image series, and
the same contours as a label map on that series' grid.

Contours are rasterised once per (volume, RTSTRUCT) on the loaded volume's own grid
(the grid a SEG or statistics export references), then reoriented like the display.
The rasterisation itself (even-odd polygon fill, contours off the grid left out and
counted) is :mod:`dicomstation.processing.rtstruct`, shared with the pipeline step that
rebuilds a loaded label map for an export.

What the views draw is the outline of each ROI's mask in the plane shown, so the
contours appear on the axial, coronal and sagittal views alike.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import highdicom as hd
import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from scipy import ndimage

from dicomstation.database import Database
from dicomstation.errors import DicomStationError, NotFoundError
from dicomstation.models import Level, Query, SeriesRef
from dicomstation.processing.rtstruct import rasterise, referenced_series

if TYPE_CHECKING:
    from dicomstation.web.viewer import ViewerVolume

__all__ = [
    "RoiMask",
    "RtOverlay",
    "RtStructs",
    "image_series_for",
    "outline",
    "rasterise",
    "referenced_series",
]

_CACHE = 4  # RTSTRUCTs kept rasterised per UI
_CACHE_BYTES = 512 * 2**20  # and at most this much mask memory (one ROI mask: a byte a voxel)
_DISPLAY = "SPL"


@dataclass(frozen=True)
class RoiMask:
    """One ROI rasterised on a grid: its number, name, colour and mask (source grid)."""

    number: int
    name: str
    colour: tuple[int, int, int]
    mask: hd.Volume
    display: hd.Volume
    skipped: int  # contours left out (off the grid, not parallel to its slices, not closed)

    @property
    def voxels(self) -> int:
        """Voxels inside the ROI."""
        return int(np.count_nonzero(self.mask.array))


@dataclass(frozen=True)
class RtOverlay:
    """An RTSTRUCT on a viewed volume."""

    series_uid: str
    label: str
    rois: dict[int, RoiMask]
    sop_instance_uid: str = ""  # the structure set instance (what an export job re-reads)

    @property
    def nbytes(self) -> int:
        """Memory held by the ROI masks."""
        return sum(int(np.asarray(r.mask.array).nbytes) for r in self.rois.values())

    def as_json(self) -> dict[str, Any]:
        """What the UI lists: the structure set and each ROI (number, name, colour, voxels)."""
        return {
            "series_uid": self.series_uid,
            "label": self.label,
            "rois": [
                {
                    "number": n,
                    "name": r.name,
                    "color": "#{:02x}{:02x}{:02x}".format(*r.colour),
                    "voxels": r.voxels,
                    "skipped_contours": r.skipped,
                }
                for n, r in sorted(self.rois.items())
            ],
        }


def outline(plane: np.ndarray, width: int = 2) -> np.ndarray:
    """The inner border (``width`` pixels) of a 2D mask, for drawing a contour."""
    plane = np.asarray(plane, dtype=bool)
    if not plane.any():
        return plane
    inner = np.asarray(ndimage.binary_erosion(plane, iterations=width, border_value=0))
    edge: np.ndarray = plane & ~inner
    return edge


def _read(path: Path) -> pydicom.Dataset | None:
    try:
        ds = pydicom.dcmread(path, force=True)
    except (InvalidDicomError, OSError, ValueError):
        return None
    return ds if str(ds.get("Modality", "")) == "RTSTRUCT" else None


def _overlay(item: ViewerVolume, ds: pydicom.Dataset, series_uid: str) -> RtOverlay | None:
    frames = {
        str(f.get("FrameOfReferenceUID", ""))
        for f in ds.get("ReferencedFrameOfReferenceSequence", [])
    }
    ours = item.loaded.frame_of_reference_uid
    if item.loaded.series_instance_uid not in referenced_series(ds) and (
        ours is None or ours not in frames
    ):
        return None
    volume = item.loaded.volume
    rois = {}
    for number, (name, colour, mask, skipped) in rasterise(ds, volume).items():
        source = volume.with_array(mask)
        display = source.to_patient_orientation(_DISPLAY)
        rois[number] = RoiMask(number, name, colour, source, display, skipped)
    label = str(ds.get("StructureSetLabel", "") or ds.get("SeriesDescription", "") or series_uid)
    return RtOverlay(series_uid, label, rois, str(ds.get("SOPInstanceUID", "")))


class RtStructs:
    """RTSTRUCTs of the database on a viewed volume, rasterised once (bounded LRU)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.lock = threading.Lock()
        self.cache: OrderedDict[tuple[str, str], RtOverlay | None] = OrderedDict()

    def for_volume(self, item: ViewerVolume) -> list[RtOverlay]:
        """Every RTSTRUCT of the study whose contours are on this volume's frame of reference."""
        query = Query(
            Level.SERIES, {"Modality": "RTSTRUCT"}, study_uid=item.loaded.study_instance_uid
        )
        found = []
        for ref in self.db.find(query):
            if isinstance(ref, SeriesRef):
                overlay = self.get(item, ref.series_uid)
                if overlay is not None:
                    found.append(overlay)
        return found

    def get(self, item: ViewerVolume, rt_uid: str) -> RtOverlay | None:
        """One RTSTRUCT on ``item`` (None when it is not on its frame of reference)."""
        key = (item.id, rt_uid)
        with self.lock:
            if key in self.cache:
                self.cache.move_to_end(key)
                return self.cache[key]
        files = self.db.series_files(rt_uid)
        ds = _read(files[0]) if files else None
        try:
            overlay = _overlay(item, ds, rt_uid) if ds is not None else None
        except (DicomStationError, ValueError, KeyError, AttributeError, TypeError):
            overlay = None  # a structure set we cannot place on this grid
        with self.lock:
            self.cache[key] = overlay
            while len(self.cache) > _CACHE or (
                len(self.cache) > 1 and self._bytes() > _CACHE_BYTES
            ):
                self.cache.popitem(last=False)  # least recently used first
        return overlay

    def _bytes(self) -> int:
        return sum(o.nbytes for o in self.cache.values() if o is not None)


def image_series_for(db: Database, series_uid: str) -> str:
    """The series to view for ``series_uid``: itself, or for an RTSTRUCT its image series.

    Raises
    ------
    NotFoundError
        When an RTSTRUCT's referenced image series is not in the local database.
    """
    found = db.find(Query(Level.SERIES, {"SeriesInstanceUID": series_uid}))  # the index only
    if not any(isinstance(r, SeriesRef) and r.modality == "RTSTRUCT" for r in found):
        return series_uid
    ds = _read(db.series_files(series_uid)[0])
    wanted = referenced_series(ds) if ds is not None else []
    for uid in wanted:
        try:
            db.series_files(uid)
        except NotFoundError:
            continue
        return uid
    raise NotFoundError(
        f"RTSTRUCT {series_uid}: its image series ({', '.join(wanted) or 'none named'}) "
        "is not in the local database; fetch it to view the contours"
    )
