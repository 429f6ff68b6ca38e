"""Scene bundles in the workstation viewer: reopen one, and map slices between grids.

A bundle (:mod:`dicomstation.export.bundle`) stores the volumes, their label maps
and the view settings (layout, window, slice). Reopening it loads its background
volume's source series from the local database, puts the first segmentation back
as the viewer's mask (remembered as a ``scene`` segmentation, so exporting it
again is a ledger job like any other), and returns the window and the slice in
the viewer's display orientation.

The viewer shows volumes reoriented (axis 0 inferior->superior...), while exports
index the source volume's own array: :func:`display_to_source` and
:func:`source_to_display` convert a slice between the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import highdicom as hd
import numpy as np

from dicomstation.database import Database
from dicomstation.dicomjson import first_value
from dicomstation.errors import ExportError, NotFoundError
from dicomstation.export.bundle import BUNDLE_CREATOR, BUNDLE_GROUP
from dicomstation.models import Level, Query, SeriesRef
from dicomstation.pipeline.ui_exports import read_scene, scene_segmentation
from dicomstation.web.viewer import AXES, DISPLAY, Viewer, ViewerVolume

__all__ = ["bundles_of", "display_to_source", "open_scene", "source_to_display"]

VIEWS = tuple(AXES)
_SC_CLASSES = ("1.2.840.10008.5.1.4.1.1.7",)  # Secondary Capture (bundles are RGB SC images)


def _creators(header: Mapping[str, Any]) -> list[str]:
    """Private creators reserved in the bundle's group (elements (0099,0010)-(0099,00FF))."""
    group = f"{BUNDLE_GROUP:04X}"
    found: list[str] = []
    for tag, element in header.items():
        if tag.upper().startswith(group) and 0x10 <= int(tag[4:], 16) <= 0xFF:
            values = element.get("Value", []) if isinstance(element, Mapping) else []
            found += [str(v) for v in values]
    return found


def bundles_of(db: Database, study_uid: str) -> list[dict[str, str]]:
    """Scene bundles of a local study: series, instance and description of each."""
    found: list[dict[str, str]] = []
    for ref in db.find(Query(Level.SERIES, study_uid=study_uid)):
        if not isinstance(ref, SeriesRef) or ref.modality not in ("OT", "SC", ""):
            continue
        for header in db.headers_of(ref.series_uid):
            if first_value(header, "SOPClassUID").startswith(_SC_CLASSES) and (
                BUNDLE_CREATOR in _creators(header)
            ):
                sop = first_value(header, "SOPInstanceUID")
                found.append(
                    {
                        "series_uid": ref.series_uid,
                        "bundle_uid": sop,
                        "description": ref.description or "",
                    }
                )
    return found


def _slice_in(start: hd.Volume, end: hd.Volume, axis: int, index: int) -> tuple[int, int]:
    """The axis of ``end`` across which slice ``index`` of ``start``'s ``axis`` lies, and where."""
    here = [(n - 1) / 2 for n in start.spatial_shape]
    here[axis] = float(index)
    there = list(here)
    there[axis] += 1
    points = start.map_indices_to_reference(np.array([here, there], dtype=float))
    mapped = end.map_reference_to_indices(points)
    moved = int(np.argmax(np.abs(mapped[1] - mapped[0])))
    found = round(float(mapped[0][moved]))
    return moved, min(max(found, 0), end.spatial_shape[moved] - 1)


def display_to_source(item: ViewerVolume, view: str, index: int) -> tuple[int, int]:
    """(source array axis, index) of the slice the viewer shows as ``index`` in ``view``."""
    axis = AXES.get(view, 0)
    index = min(max(int(index), 0), item.display.spatial_shape[axis] - 1)
    return _slice_in(item.display, item.loaded.volume, axis, index)


def source_to_display(item: ViewerVolume, axis: int, index: int) -> tuple[str, int]:
    """(view, display index) of slice ``index`` along the source volume's array ``axis``."""
    moved, found = _slice_in(item.loaded.volume, item.display, axis, index)
    return VIEWS[moved], found


def open_scene(viewer: Viewer, bundle_uid: str) -> tuple[ViewerVolume, dict[str, Any]]:
    """Load a bundle's scene into the viewer; the volume and what the UI restores.

    Raises
    ------
    NotFoundError
        When the bundle, or its background volume's source series, is not in the database.
    ExportError
        When the bundle is damaged or its label map is not on the volume's grid.
    """
    scene = read_scene(viewer.db, bundle_uid)
    if not scene.volumes:
        raise ExportError(f"scene bundle {bundle_uid} holds no volume")
    view = scene.view
    background = next((v for v in scene.volumes if v.name == view.background), scene.volumes[0])
    series = background.series_uid
    if not series or not viewer.db.files_of(series):
        raise NotFoundError(
            f"scene bundle {bundle_uid}: its volume's series {series or '(none)'} is not in "
            "the local database; fetch it first"
        )
    item = viewer.load(series)
    restored: dict[str, Any] = {"bundle_uid": bundle_uid, "layout": view.layout, "segments": []}
    if scene.segmentations:
        found = scene_segmentation(scene, 0, f"scene bundle {bundle_uid}")
        if tuple(found.labels.spatial_shape) != tuple(item.loaded.volume.spatial_shape):
            raise ExportError(f"scene bundle {bundle_uid}: its label map is not on {series}'s grid")
        mask = item.loaded.volume.with_array(np.asarray(found.labels.array) > 0)
        item.mask, item.method = mask, "scene"
        item.mask_display = mask.to_patient_orientation(DISPLAY)
        restored["segments"] = [
            {"number": s.number, "label": s.label, "color": list(s.display_color)}
            for s in found.segments
        ]
    restored["window"] = list(view.window) if view.window else None
    if view.cursor_mm is not None:  # the last seed of the export, as display indices
        point = item.display.map_reference_to_indices(np.array([view.cursor_mm], dtype=float))
        restored["seeds"] = [[round(float(v)) for v in point[0]]]
    if view.slice_index is not None:
        shown, index = source_to_display(item, view.slice_axis, view.slice_index)
        restored["slice"] = {"view": shown, "index": index}
    return item, restored
