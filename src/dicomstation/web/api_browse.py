"""UI API: servers and credentials (secrets masked), study/series browsing, metadata, thumbnails."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, HTTPException, Request, Response

from dicomstation.models import Level, Query
from dicomstation.server.uids import check_uid
from dicomstation.web.workstation import Workstation

__all__ = ["COUNT_CAP", "browse_router"]

#: Most studies counted for the "of N" beside the pager (QIDO-RS and C-FIND have no count).
COUNT_CAP = 1000

STUDY_FILTERS = (
    "PatientName",
    "PatientID",
    "StudyDate",
    "ModalitiesInStudy",
    "StudyDescription",
    "AccessionNumber",
)


def _paging(request: Request) -> tuple[int, int]:
    try:
        limit = int(request.query_params.get("limit", "25"))
        offset = int(request.query_params.get("offset", "0"))
    except ValueError:
        raise HTTPException(400, "limit and offset must be integers") from None
    if not (1 <= limit <= 1000 and offset >= 0):
        raise HTTPException(400, "limit must be 1..1000 and offset >= 0")
    return limit, offset


def _filters(request: Request) -> dict[str, str]:
    out = {}
    for key in STUDY_FILTERS:
        value = request.query_params.get(key, "").strip()
        if value:
            out[key] = value
    return out


def browse_router(ws: Workstation) -> APIRouter:
    """Routes under ``/api`` for settings and browsing."""
    router = APIRouter()

    @router.get("/servers")
    def servers() -> list[dict[str, Any]]:
        return ws.servers()

    @router.put("/servers/{name}")
    def save_server(name: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        return ws.save_server(name, body)

    @router.delete("/servers/{name}")
    def delete_server(name: str) -> dict[str, str]:
        ws.delete_server(name)
        return {"deleted": name}

    @router.get("/auth")
    def auth() -> dict[str, str]:
        return ws.auth()

    @router.put("/auth")
    def save_auth(body: dict[str, Any] = Body(...)) -> dict[str, str]:  # noqa: B008
        return ws.save_auth(body)

    @router.get("/servers/{name}/studies")
    def studies(name: str, request: Request) -> dict[str, Any]:
        limit, offset = _paging(request)
        # one extra row tells the pager whether a next page exists
        found = ws.query(
            name, Query(Level.STUDY, _filters(request), limit=limit + 1, offset=offset)
        )
        return {"items": found[:limit], "more": len(found) > limit, "offset": offset}

    @router.get("/servers/{name}/studies/count")
    def count(name: str, request: Request) -> dict[str, Any]:
        """How many studies match the filters, counted up to COUNT_CAP (then ``capped``)."""
        found = ws.query(name, Query(Level.STUDY, _filters(request), limit=COUNT_CAP + 1))
        return {"total": min(len(found), COUNT_CAP), "capped": len(found) > COUNT_CAP}

    @router.get("/servers/{name}/studies/{study}/series")
    def series(name: str, study: str) -> list[dict[str, Any]]:
        query = Query(Level.SERIES, study_uid=check_uid(study, "StudyInstanceUID"))
        return ws.query(name, query)

    @router.get("/servers/{name}/studies/{study}/series/{series}/metadata")
    def metadata(name: str, study: str, series: str) -> list[dict[str, Any]]:
        check_uid(study, "StudyInstanceUID")
        check_uid(series, "SeriesInstanceUID")
        return [dict(h) for h in ws.metadata(name, study, series)]

    @router.get("/servers/{name}/studies/{study}/series/{series}/thumbnail")
    def thumbnail(name: str, study: str, series: str) -> Response:
        check_uid(study, "StudyInstanceUID")
        check_uid(series, "SeriesInstanceUID")
        if name == "local":
            from dicomstation.server.render import render_file

            path = ws.db.series_files(series)
            return Response(render_file(path[len(path) // 2], size=96), media_type="image/jpeg")
        data = ws.thumbnail(name, study, series)
        if data is None:
            raise HTTPException(404, f"server {name} cannot render thumbnails")
        return Response(data, media_type="image/jpeg")

    return router
