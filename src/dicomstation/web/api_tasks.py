"""UI API: fetch/send/export jobs (ledger pipelines: progress, cancel, resume), delete, viewer.

``POST /api/volumes/{id}/export`` starts a ledger job (load, segment, export of the
viewed series) and answers with the job; its ``outputs`` are the exported series
once it is done. ``POST /api/scenes`` reopens a scene bundle in the viewer.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, HTTPException, Request, Response

from dicomstation.export import ExportOptions
from dicomstation.server.render import parse_window
from dicomstation.server.uids import check_uid
from dicomstation.web.scenes import bundles_of
from dicomstation.web.viewer import PRESETS
from dicomstation.web.workstation import Workstation

__all__ = ["tasks_router", "viewer_router"]

_EXPORT_TAGS = ("series_description", "institution_name", "content_creator_name")


def _items(body: dict[str, Any]) -> list[tuple[str, list[str]]]:
    items = []
    for item in body.get("items", []):
        study = check_uid(str(item.get("study", "")), "StudyInstanceUID")
        series = [check_uid(str(s), "SeriesInstanceUID") for s in item.get("series", [])]
        items.append((study, series))
    if not items:
        raise HTTPException(400, "nothing selected to fetch")
    return items


def _export_options(body: dict[str, Any]) -> ExportOptions:
    tags = {k: str(body[k]).strip() for k in _EXPORT_TAGS if str(body.get(k) or "").strip()}
    number = body.get("series_number")
    try:
        return ExportOptions(
            series_number=int(number) if number not in (None, "") else None, **tags
        )
    except ValueError:
        raise HTTPException(400, f"series number must be an integer, not {number!r}") from None


def _number(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise HTTPException(400, f"{key} must be a number, not {value!r}") from None


def _shown(body: dict[str, Any]) -> dict[str, Any]:
    """What the viewer shows (view, slice, window) and a derived series' filter."""
    raw_index = body.get("index")
    index = "" if raw_index is None else str(raw_index)
    window = parse_window(body.get("window"))
    median = _number(body, "median")
    return {
        "view": str(body.get("view", "axial")),
        "index": int(index) if index.isascii() and index.isdigit() else None,
        "window": list(window) if window else None,
        "smooth_mm": _number(body, "smooth_mm"),
        "median": int(median) if median is not None else None,
        "seeds": _seeds(body.get("seeds", [])),
    }


def _seeds(raw: Any) -> list[list[float]]:
    try:
        seeds = [[float(v) for v in s] for s in raw][:1000]
    except (TypeError, ValueError):
        raise HTTPException(400, "seeds must be [slice, row, column] numbers") from None
    if any(len(s) != 3 for s in seeds):
        raise HTTPException(400, "each seed is [slice, row, column]")
    return seeds


def _job_or_404(ws: Workstation, job_id: str) -> Any:
    job = ws.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id!r}")
    return job


def tasks_router(ws: Workstation) -> APIRouter:
    """Routes under ``/api`` for fetch/send jobs and local deletes."""
    router = APIRouter()

    @router.post("/fetch")
    def fetch(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        return ws.fetch(str(body.get("server", "")), _items(body)).as_json()

    @router.post("/send")
    def send(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        uids = [check_uid(str(u), "UID") for u in body.get("uids", [])]
        if not uids:
            raise HTTPException(400, "nothing selected to send")
        deid = body.get("deid", False)
        if not isinstance(deid, bool):
            raise HTTPException(400, "deid must be true or false")
        return ws.send(str(body.get("server", "")), uids, deid=deid).as_json()

    @router.get("/jobs")
    def jobs() -> list[dict[str, Any]]:
        return ws.jobs.all()

    @router.get("/jobs/{job_id}")
    def job(job_id: str) -> dict[str, Any]:
        return dict(_job_or_404(ws, job_id).as_json())

    @router.post("/jobs/{job_id}/cancel")
    def cancel(job_id: str) -> dict[str, Any]:
        found = _job_or_404(ws, job_id)
        found.cancel.cancel()
        return dict(found.as_json())

    @router.post("/jobs/{job_id}/resume")
    def resume(job_id: str) -> dict[str, Any]:
        """Run a ledger job's remaining (pending, failed, cancelled) items again."""
        try:
            return ws.resume(job_id).as_json()
        except KeyError:
            raise HTTPException(404, f"no job {job_id!r} in the ledger") from None

    @router.delete("/local/{uid}")
    def delete(uid: str) -> dict[str, Any]:
        return {"deleted": uid, "instances": ws.delete(check_uid(uid, "UID"))}

    return router


def viewer_router(ws: Workstation) -> APIRouter:
    """Routes under ``/api`` for the viewer: load, render, segment, export."""
    router = APIRouter()

    @router.get("/presets")
    def presets() -> dict[str, list[float]]:
        return {k: list(v) for k, v in PRESETS.items()}

    @router.post("/volumes")
    def load(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        series = check_uid(str(body.get("series_uid", "")), "SeriesInstanceUID")
        return ws.viewer.load(series).info()

    @router.get("/volumes/{volume_id}")
    def info(volume_id: str) -> dict[str, Any]:
        return ws.viewer.get(volume_id).info()

    @router.get("/volumes/{volume_id}/render")
    def render(volume_id: str, request: Request) -> Response:
        params = request.query_params
        index = params.get("index")
        png = ws.viewer.render(
            volume_id,
            params.get("view", "axial"),
            int(index) if index and index.isascii() and index.isdigit() else None,
            parse_window(params.get("window")),
            params.get("mip") == "1",
            params.get("overlay", "1") == "1",
        )
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    @router.post("/volumes/{volume_id}/segment")
    def segment(volume_id: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        try:
            low, high = float(body.get("low", 0)), float(body.get("high", 0))
            seeds = [tuple(float(v) for v in s) for s in body.get("seeds", [])]
        except (TypeError, ValueError):
            raise HTTPException(400, "low/high must be numbers and seeds [slice,row,col]") from None
        if any(len(s) != 3 for s in seeds):
            raise HTTPException(400, "each seed is [slice, row, column]")
        return ws.segment(
            volume_id,
            str(body.get("method", "threshold")),
            low,
            high,
            [(s[0], s[1], s[2]) for s in seeds],
        )

    @router.post("/volumes/{volume_id}/export")
    def export(volume_id: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        shown = _shown(body)
        job = ws.export(volume_id, str(body.get("kind", "SEG")), _export_options(body), shown)
        return job.as_json()

    @router.get("/studies/{study}/scenes")
    def scenes(study: str) -> list[dict[str, str]]:
        return bundles_of(ws.db, check_uid(study, "StudyInstanceUID"))

    @router.post("/scenes")
    def open_scene(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        return ws.open_scene(check_uid(str(body.get("bundle_uid", "")), "SOPInstanceUID"))

    return router
