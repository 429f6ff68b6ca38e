"""SEG overlays in the workstation viewer: every SEG of the database that references the
series being viewed, each segment drawn in its recommended colour and toggled by number.

Masks are taken frame by frame from the SEG for the loaded series' own SOP instances
(``get_pixels_by_source_instance``), so they sit on the source grid whatever the SEG's
frame order, then reoriented like the displayed volume.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
from fastapi import APIRouter, HTTPException, Request, Response

from dicomstation.errors import DicomStationError
from dicomstation.export import Overlay
from dicomstation.models import Level, Query, SeriesRef
from dicomstation.server.render import parse_window
from dicomstation.server.uids import check_uid
from dicomstation.web.viewer import AXES, DISPLAY, ViewerVolume
from dicomstation.web.viewer_rt_api import rt_outlines
from dicomstation.web.workstation import Workstation

__all__ = ["SegOverlay", "lab_to_rgb", "seg_router"]

_CACHE = 8  # SEGs kept decoded per UI
_DEFAULT_COLOURS = [(255, 64, 64), (64, 200, 64), (64, 128, 255), (255, 200, 0), (200, 64, 255)]


def lab_to_rgb(encoded: list[int]) -> tuple[int, int, int]:
    """DICOM-encoded CIELab (0-65535 each, D65) to 8-bit sRGB."""
    lum = encoded[0] / 65535 * 100
    a, b = encoded[1] / 65535 * 255 - 128, encoded[2] / 65535 * 255 - 128
    fy = (lum + 16) / 116
    f = np.array([fy + a / 500, fy, fy - b / 200])
    xyz = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * [0.95047, 1.0, 1.08883]
    m = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]])
    rgb = np.clip(m @ xyz, 0, 1)
    rgb = np.where(rgb <= 0.0031308, 12.92 * rgb, 1.055 * rgb ** (1 / 2.4) - 0.055)
    r, g, bl = (round(float(v) * 255) for v in rgb)
    return r, g, bl


@dataclass(frozen=True)
class SegOverlay:
    """One SEG on the viewed volume's display grid: segment number -> (label, colour, mask)."""

    series_uid: str
    description: str
    segments: dict[int, tuple[str, tuple[int, int, int], hd.Volume]]

    def as_json(self) -> dict[str, Any]:
        """What the UI lists: the SEG and its segments (number, label, colour)."""
        return {
            "series_uid": self.series_uid,
            "description": self.description,
            "segments": [
                {"number": n, "label": label, "color": "#{:02x}{:02x}{:02x}".format(*colour)}
                for n, (label, colour, _mask) in sorted(self.segments.items())
            ],
        }


def _decode(item: ViewerVolume, path: Any, series_uid: str) -> SegOverlay | None:
    seg = hd.seg.segread(path)
    sources = list(item.loaded.sop_instance_uids)
    referenced = {
        r.ReferencedSOPInstanceUID
        for s in getattr(seg, "ReferencedSeriesSequence", [])
        for r in getattr(s, "ReferencedInstanceSequence", [])
    }
    if not referenced & set(sources):
        return None
    pixels = seg.get_pixels_by_source_instance(sources, ignore_spatial_locations=True)
    segments = {}
    for i, desc in enumerate(seg.SegmentSequence):
        colour = (
            lab_to_rgb(list(desc.RecommendedDisplayCIELabValue))
            if "RecommendedDisplayCIELabValue" in desc
            else _DEFAULT_COLOURS[i % len(_DEFAULT_COLOURS)]
        )
        mask = item.loaded.volume.with_array(np.asarray(pixels[..., i] > 0))
        segments[int(desc.SegmentNumber)] = (
            str(desc.SegmentLabel),
            colour,
            mask.to_patient_orientation(DISPLAY),
        )
    return SegOverlay(series_uid, str(getattr(seg, "SeriesDescription", "")), segments)


class _Overlays:
    """SEGs referencing a viewed series, decoded once (bounded LRU)."""

    def __init__(self, ws: Workstation) -> None:
        self.ws = ws
        self.lock = threading.Lock()
        self.cache: OrderedDict[tuple[str, str], SegOverlay | None] = OrderedDict()

    def for_volume(self, item: ViewerVolume) -> list[SegOverlay]:
        query = Query(Level.SERIES, {"Modality": "SEG"}, study_uid=item.loaded.study_instance_uid)
        found = []
        for ref in self.ws.db.find(query):
            if not isinstance(ref, SeriesRef):
                continue
            overlay = self.get(item, ref.series_uid)
            if overlay is not None:
                found.append(overlay)
        return found

    def get(self, item: ViewerVolume, seg_uid: str) -> SegOverlay | None:
        key = (item.id, seg_uid)
        with self.lock:
            if key in self.cache:
                self.cache.move_to_end(key)
                return self.cache[key]
        files = self.ws.db.series_files(seg_uid)
        try:
            overlay = _decode(item, files[0], seg_uid) if files else None
        except (DicomStationError, ValueError, KeyError, AttributeError):
            overlay = None  # not a SEG highdicom reads, or not on this grid
        with self.lock:
            self.cache[key] = overlay
            while len(self.cache) > _CACHE:
                self.cache.popitem(last=False)
        return overlay


def _chosen(spec: str) -> list[tuple[str, int]]:
    """``SEGUID:1,2;SEGUID2:3`` -> [(uid, number)...] (segments, or RT ROI numbers)."""
    out = []
    for part in filter(None, spec.split(";")):
        uid, _, numbers = part.partition(":")
        check_uid(uid, "SeriesInstanceUID")
        for n in filter(None, numbers.split(",")):
            if not (n.isascii() and n.isdigit()):
                raise HTTPException(400, f"segment numbers are integers, not {n!r}")
            out.append((uid, int(n)))
    return out


def _integer(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None


def seg_router(ws: Workstation) -> APIRouter:
    """``GET /api/volumes/{id}/segs`` and ``GET /api/volumes/{id}/render-segs``."""
    router = APIRouter()
    overlays = _Overlays(ws)

    @router.get("/volumes/{volume_id}/segs")
    def segs(volume_id: str) -> list[dict[str, Any]]:
        return [o.as_json() for o in overlays.for_volume(ws.viewer.get(volume_id))]

    @router.get("/volumes/{volume_id}/render-segs")
    def render(volume_id: str, request: Request) -> Response:
        """A view with layers: SEG segments (``segs``), RT ROI contours (``rois``, see
        :mod:`dicomstation.web.viewer_rt_api`) and a time point (``frame``) of a cine."""
        item = ws.viewer.get(volume_id)
        params = request.query_params
        view = params.get("view", "axial")
        axis = AXES.get(view)
        if axis is None:
            raise HTTPException(400, "view is axial, coronal or sagittal")
        index, frame = _integer(params.get("index", "")), _integer(params.get("frame", ""))
        drawn = []
        for uid, number in _chosen(params.get("segs", "")):
            overlay = overlays.get(item, uid)
            if overlay is not None and number in overlay.segments:
                _label, colour, mask = overlay.segments[number]
                drawn.append(Overlay(mask, colour, 0.5))
        drawn += rt_outlines(ws, item, _chosen(params.get("rois", "")), axis, index)
        png = ws.viewer.render(
            volume_id,
            view,
            index,
            parse_window(params.get("window")),
            mip=params.get("mip") == "1",
            overlay=params.get("overlay", "1") == "1",
            frame=frame,
            layers=drawn,
        )
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    return router
