"""Routes for RTSTRUCTs in the workstation viewer (see :mod:`dicomstation.web.viewer_rt`).

``GET /api/volumes/{id}/rtstructs`` lists every RTSTRUCT of the study on the viewed
volume's frame of reference with its ROIs (number, name, colour, voxels); the views
draw the chosen ROIs' contours through ``render-segs?rois=RTUID:1,2``; and
``POST /api/volumes/{id}/rtstructs/{uid}/labelmap`` loads the chosen ROIs (all when
none are named) as a label map on the volume's grid: it becomes the viewer's current
segmentation (overlay, voxel count and volume; :meth:`Viewer.export` writes it as a SEG),
each ROI's voxel count is returned. The UI's Export button runs a ledger job that replays
how the mask was made: the label map is recorded as the ``rtstruct_labelmap`` step
(:mod:`dicomstation.pipeline.rt_labelmap`: the structure set instance and the ROI
numbers), so its SEG has one segment per chosen ROI with the ROI's name and colour.
"""

from __future__ import annotations

from typing import Any

import highdicom as hd
import numpy as np
from fastapi import APIRouter, Body, HTTPException

from dicomstation.export import Overlay
from dicomstation.pipeline.rt_labelmap import RtLabelmapStep
from dicomstation.server.uids import check_uid
from dicomstation.web.viewer import ViewerVolume
from dicomstation.web.viewer_rt import RtOverlay, outline
from dicomstation.web.workstation import Workstation

__all__ = ["label_map", "rt_outlines", "rt_router"]


def rt_outlines(
    ws: Workstation, item: ViewerVolume, chosen: list[tuple[str, int]], axis: int, index: int | None
) -> list[Overlay]:
    """Outlines of the chosen ROIs in the plane ``index`` along ``axis``, as overlays."""
    size = item.display.spatial_shape[axis]
    index = size // 2 if index is None else index
    if not chosen or not 0 <= index < size:
        return []
    drawn = []
    for uid, number in chosen:
        overlay = ws.viewer.rt.get(item, uid)
        roi = overlay.rois.get(number) if overlay is not None else None
        if roi is None:
            continue
        plane = np.take(np.asarray(roi.display.array), index, axis=axis)
        if not plane.any():
            continue
        edge = np.zeros(item.display.spatial_shape, dtype=bool)  # only this plane is drawn
        slicer: list[Any] = [slice(None)] * 3
        slicer[axis] = index
        edge[tuple(slicer)] = outline(plane)
        drawn.append(Overlay(item.display.with_array(edge), roi.colour, 1.0))
    return drawn


def label_map(overlay: RtOverlay, numbers: list[int] | None = None) -> hd.Volume:
    """The chosen ROIs (all by default) as one label volume of ROI numbers on the source grid.

    Where ROIs overlap, the later ROI number wins; each ROI's own mask is in ``overlay``.
    """
    chosen = sorted(overlay.rois) if not numbers else sorted(numbers)
    first = next(iter(overlay.rois.values()), None)
    if first is None:
        raise HTTPException(422, f"RTSTRUCT {overlay.series_uid} has no ROI on this grid")
    labels = np.zeros(first.mask.spatial_shape, dtype=np.uint16)
    for number in chosen:
        roi = overlay.rois.get(number)
        if roi is None:
            raise HTTPException(404, f"RTSTRUCT {overlay.series_uid} has no ROI {number}")
        labels[np.asarray(roi.mask.array, dtype=bool)] = number
    return first.mask.with_array(labels)


def rt_router(ws: Workstation) -> APIRouter:
    """``GET /api/volumes/{id}/rtstructs`` and ``POST .../rtstructs/{uid}/labelmap``."""
    router = APIRouter()

    @router.get("/volumes/{volume_id}/rtstructs")
    def rtstructs(volume_id: str) -> list[dict[str, Any]]:
        item = ws.viewer.get(volume_id)
        return [o.as_json() for o in ws.viewer.rt.for_volume(item)]

    @router.post("/volumes/{volume_id}/rtstructs/{rt_uid}/labelmap")
    def load_label_map(
        volume_id: str,
        rt_uid: str,
        body: dict[str, Any] = Body(default={}),  # noqa: B008
    ) -> dict[str, Any]:
        item = ws.viewer.get(volume_id)
        overlay = ws.viewer.rt.get(item, check_uid(rt_uid, "SeriesInstanceUID"))
        if overlay is None:
            raise HTTPException(
                404, f"no RTSTRUCT {rt_uid} on the frame of reference of this volume"
            )
        raw = body.get("rois") or []
        if not isinstance(raw, list) or not all(isinstance(n, int) for n in raw):
            raise HTTPException(400, "rois is a list of ROI numbers")
        labels = label_map(overlay, raw)
        result = ws.viewer.set_mask(volume_id, np.asarray(labels.array) > 0, "RTSTRUCT label map")
        chosen = sorted(set(raw)) or sorted(overlay.rois)
        if overlay.sop_instance_uid:  # what an export job replays (see pipeline.rt_labelmap)
            recipe = {"rtstruct_uid": overlay.sop_instance_uid, "rois": chosen}
            ws.segmented[volume_id] = (RtLabelmapStep.kind, recipe)
        else:  # no instance to re-read: an export refuses rather than writing an older mask
            ws.segmented.pop(volume_id, None)
        rois = [
            {"number": n, "name": overlay.rois[n].name, "voxels": overlay.rois[n].voxels}
            for n in chosen
        ]
        return {**result, "series_uid": rt_uid, "rois": rois}

    return router
