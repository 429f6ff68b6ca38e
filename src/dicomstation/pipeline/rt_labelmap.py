"""The ``rtstruct_labelmap`` step: segment each loaded series with ROIs of an RTSTRUCT.

What the workstation viewer's "Load as label map" did, replayed in a pipeline (so the
UI's Export of that label map is a ledger job like the other viewer exports): the
structure set instance ``rtstruct_uid`` of the local database is read and the ROIs
numbered ``rois`` (all when empty) are rasterised on the loaded series' grid by
:mod:`dicomstation.processing.rtstruct`, the same code the viewer draws with. Each ROI
becomes one segment (label value = its position among the chosen ROIs, in ROI number
order) named after the ROI, in its ROI Display Color (a SEG writes it as the
recommended display CIELab value), algorithm type MANUAL (contours are drawn, not
computed); a chosen ROI with no contour on the grid makes no segment. Where ROIs
overlap the higher ROI number wins, as in the viewer's label map, so the union of the
chosen ROIs is exactly the viewer's mask (the pipeline's segmentation is one label map).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import highdicom as hd
import pydicom
from pydicom.errors import InvalidDicomError

from dicomstation.database import Database
from dicomstation.errors import ExportError, NotFoundError
from dicomstation.export.seg import Algorithm
from dicomstation.pipeline.segmenters import Segmentation, SegmentDescription
from dicomstation.pipeline.step import StepContext, register_step
from dicomstation.processing.rtstruct import rasterised_rois, roi_label_map

__all__ = ["RtLabelmapStep", "read_rtstruct", "rtstruct_segmentation"]


def read_rtstruct(db: Database, sop_uid: str) -> pydicom.Dataset:
    """The RTSTRUCT instance ``sop_uid`` of ``db`` (NotFoundError / ExportError naming it)."""
    try:
        files = db.files_of(sop_uid)
    except NotFoundError:
        files = []
    if not files:
        raise NotFoundError(f"no RTSTRUCT instance {sop_uid} in the local database")
    try:
        ds = pydicom.dcmread(Path(files[0]), force=True)
    except (InvalidDicomError, OSError, ValueError) as exc:
        raise ExportError(f"RTSTRUCT {sop_uid}: cannot be read ({exc})") from None
    if str(ds.get("Modality", "")) != "RTSTRUCT":
        raise ExportError(f"instance {sop_uid} is not an RTSTRUCT")
    return ds


def rtstruct_segmentation(
    ds: pydicom.Dataset, source: hd.Volume, numbers: tuple[int, ...], where: str
) -> Segmentation:
    """The chosen ROIs of ``ds`` on the volume ``source`` as a Segmentation."""
    found = rasterised_rois(ds, source, numbers or None)
    missing = [n for n in numbers if n not in found]
    if missing:
        raise ExportError(f"{where} has no ROI {', '.join(str(n) for n in missing)}")
    chosen = [found[n] for n in sorted(found) if found[n].mask.any()]  # empty: no segment
    if not chosen:
        raise ExportError(f"{where}: none of its chosen ROIs has a contour on this series")
    labels = source.with_array(roi_label_map(chosen, source.spatial_shape))
    segments = tuple(
        SegmentDescription(
            value,
            roi.name or f"ROI {roi.number}",
            color=roi.colour,
            algorithm=Algorithm.MANUAL,
            algorithm_name=f"RTSTRUCT ROI {roi.number}",
        )
        for value, roi in enumerate(chosen, start=1)
    )
    return Segmentation(labels, segments)


@dataclass(frozen=True)
class RtLabelmapStep:
    """Segment each loaded series with the ROIs ``rois`` of the RTSTRUCT ``rtstruct_uid``."""

    kind: ClassVar[str] = "rtstruct_labelmap"
    memory_only: ClassVar[bool] = True
    name: str
    rtstruct_uid: str
    rois: tuple[int, ...] = ()

    def run(self, ctx: StepContext) -> tuple[str, ...]:
        """Rasterise the ROIs; outputs are the series they are attached to."""
        ds = read_rtstruct(ctx.db, self.rtstruct_uid)
        where = f"RTSTRUCT {self.rtstruct_uid}"
        return ctx.segment_each(
            self.name,
            lambda _uid, source: rtstruct_segmentation(ds, source.volume, self.rois, where),
        )

    def restore(self, ctx: StepContext, outputs: tuple[str, ...]) -> None:
        """Never called: the label map is rasterised again whenever a later step needs it."""

    def to_dict(self) -> dict[str, Any]:
        """Pipeline-file table."""
        return {
            "kind": self.kind,
            "name": self.name,
            "rtstruct_uid": self.rtstruct_uid,
            "rois": list(self.rois),
        }


def rt_labelmap_step(name: str, table: Mapping[str, Any]) -> RtLabelmapStep:
    """The step from its table (``rtstruct_uid``, optional ``rois``: ROI numbers)."""
    raw = table.get("rois") or []
    if not isinstance(raw, list | tuple) or not all(isinstance(n, int) for n in raw):
        raise ValueError("rois is a list of ROI numbers")
    return RtLabelmapStep(name, str(table["rtstruct_uid"]), tuple(sorted(set(raw))))


register_step(RtLabelmapStep.kind, rt_labelmap_step)
