"""The loadable chooser: when a series holds several loadables (echoes, magnitude and
phase, several orientations...), the UI lists each with its confidence and warnings,
as Slicer's DICOM browser does, and loads the one the user picks.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from dicomstation.server.uids import check_uid
from dicomstation.volumes import Loadable, examine, load
from dicomstation.web.workstation import Workstation

__all__ = ["loadable_json", "loadables_router"]


def loadable_json(index: int, loadable: Loadable) -> dict[str, Any]:
    """What the chooser shows of one loadable."""
    return {
        "index": index,
        "name": loadable.name,
        "kind": loadable.kind.value,
        "reason": loadable.reason,
        "confidence": round(loadable.confidence, 3),
        "warnings": list(loadable.warnings),
        "frames": len(loadable.frames),
    }


def loadables_router(ws: Workstation) -> APIRouter:
    """``GET /api/series/{uid}/loadables`` and ``POST .../loadables/{index}`` (load it)."""
    router = APIRouter()

    def _examine(series_uid: str) -> list[Loadable]:
        shown = ws.viewer.image_series(check_uid(series_uid, "SeriesInstanceUID"))
        return examine(ws.db.series_files(shown))  # an RTSTRUCT: its image series

    @router.get("/series/{series_uid}/loadables")
    def loadables(series_uid: str) -> list[dict[str, Any]]:
        return [loadable_json(i, ld) for i, ld in enumerate(_examine(series_uid))]

    @router.post("/series/{series_uid}/loadables/{index}")
    def load_one(series_uid: str, index: int) -> dict[str, Any]:
        found = _examine(series_uid)
        if not 0 <= index < len(found):
            raise HTTPException(404, f"series {series_uid} has {len(found)} loadable(s)")
        return ws.viewer.add(load(found[index]), ws.viewer.image_series(series_uid)).info()

    return router
