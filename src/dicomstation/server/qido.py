"""QIDO-RS (PS3.18 10.6) over the local database: studies, series and instances."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydicom.datadict import keyword_for_tag

from dicomstation.database.matching import COLUMNS
from dicomstation.dicomjson import tag_hex
from dicomstation.errors import DatabaseError, NotFoundError
from dicomstation.models import Level, Query
from dicomstation.server.accept import require_json
from dicomstation.server.context import ServerContext
from dicomstation.server.public import public_text
from dicomstation.server.qido_attrs import HEADER_DEFAULTS, level_tags
from dicomstation.server.uids import check_uid, check_uid_list

__all__ = ["DICOM_JSON", "parse_query", "qido_router"]

DICOM_JSON = "application/dicom+json"
_CONTROL = {"limit", "offset", "includefield", "fuzzymatching", "token"}
_MAX_OFFSET = 2**62  # beyond any database; larger values would overflow SQLite
_PARTIAL_MOST = 32  # includefield lists up to this many tags read only those from a file
_UID_KEYS = {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"}


def _keyword(name: str) -> str:
    if len(name) == 8 and all(c in "0123456789abcdefABCDEF" for c in name):
        found = keyword_for_tag(int(name, 16))
        if not found:
            raise HTTPException(400, f"unknown attribute tag {name!r}")
        return str(found)
    try:
        tag_hex(name)
    except KeyError:
        raise HTTPException(400, f"unknown attribute {name!r}") from None
    return name


def _int_param(params: Mapping[str, str], name: str, default: int | None) -> int | None:
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise HTTPException(400, f"{name} must be a non-negative integer, not {text!r}") from None
    if name == "limit" and value > _MAX_OFFSET:
        return _MAX_OFFSET  # clamped again to max_results when the query runs
    if value < 0 or value > _MAX_OFFSET:
        shown = text if len(text) <= 24 else text[:21] + "..."
        raise HTTPException(
            400, f"{name} must be an integer from 0 to {_MAX_OFFSET}, not {shown!r}"
        )
    return value


def _include_fields(request: Request) -> tuple[str, ...]:
    fields: list[str] = []
    for raw in request.query_params.getlist("includefield"):
        for item in raw.split(","):
            item = item.strip()
            if item:
                fields.append("all" if item.lower() == "all" else _keyword(item))
    return tuple(fields)


def parse_query(
    request: Request,
    level: Level,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> Query:
    """Turn QIDO-RS query parameters into a :class:`Query`, validating every value.

    Raises
    ------
    fastapi.HTTPException
        400 for unknown attributes, attributes the index cannot match, bad UIDs or paging;
        406 when the Accept header allows no JSON answer.
    """
    require_json(request.headers.get("accept"))
    params = request.query_params
    filters: dict[str, str] = {}
    for name in params:
        if name.lower() in _CONTROL:
            continue
        keyword = _keyword(name)
        if keyword not in COLUMNS:
            known = ", ".join(sorted(COLUMNS))
            raise HTTPException(400, f"cannot match on {keyword}; supported: {known}")
        value = params[name]
        filters[keyword] = check_uid_list(value, keyword) if keyword in _UID_KEYS else value
    return Query(
        level=level,
        filters=filters,
        study_uid=study_uid,
        series_uid=series_uid,
        include_fields=_include_fields(request),
        fuzzy=params.get("fuzzymatching", "false").lower() == "true",
        limit=_int_param(params, "limit", None),
        offset=_int_param(params, "offset", 0) or 0,
    )


def _wanted(obj: Mapping[str, Any], level: Level, fields: tuple[str, ...]) -> set[str] | None:
    """Tags to copy from a header: PS3.18 defaults the row lacks, plus includefield
    (None: the whole header, for ``includefield=all`` at instance level)."""
    if "all" in fields and level is Level.IMAGE:
        return None
    wanted = set(HEADER_DEFAULTS.get(level, frozenset()))
    wanted |= {tag_hex(f) for f in fields if f != "all"}
    if "all" in fields:
        wanted |= level_tags(level)
    return wanted - set(obj)


def _partial(wanted: set[str] | None) -> frozenset[str] | None:
    """The tags to read alone when the header is not cached (None: make the whole header,
    which is then cached; worth it for includefield=all, not for a few default tags)."""
    return frozenset(wanted) if wanted is not None and len(wanted) <= _PARTIAL_MOST else None


def _extra(
    ctx: ServerContext, obj: Mapping[str, Any], level: Level, fields: tuple[str, ...]
) -> dict[str, Any]:
    """Attributes of the result the index row lacks, from one cached header."""
    wanted = _wanted(obj, level, fields)
    if wanted is not None and not wanted:
        return {}
    tag = {Level.STUDY: "0020000D", Level.SERIES: "0020000E"}.get(level, "00080018")
    uid = (obj.get(tag, {}).get("Value") or [None])[0]
    try:  # one header per result, one query (issue 12: 70 s study list, 193 s instances)
        header = ctx.db.first_header(level, str(uid), _partial(wanted)) if uid else None
    except NotFoundError:
        return {}
    if header is None:
        return {}
    return {
        k: v
        for k, v in header.items()
        if (wanted is None or k in wanted)
        and k not in obj
        and not k.startswith("0002")
        and "BulkDataURI" not in v  # bulk values are for WADO-RS metadata, not searches
    }


def _retrieve_url(root: str, obj: Mapping[str, Any], level: Level) -> dict[str, Any]:
    """Retrieve URL (0008,1190) of a result: PS3.18 Tables 10.6.3-3 to -5 list it."""

    def first(tag: str) -> str:
        return str((obj.get(tag, {}).get("Value") or [""])[0])

    url = f"{root}/studies/{first('0020000D')}"
    if level is not Level.STUDY:
        url += f"/series/{first('0020000E')}"
    if level is Level.IMAGE:
        url += f"/instances/{first('00080018')}"
    return {"00081190": {"vr": "UR", "Value": [url]}}


def _run(ctx: ServerContext, request: Request, query: Query) -> JSONResponse:
    """Answer a search; ``limit`` is clamped to ``max_results`` (set to it when absent)."""
    most = ctx.options.max_results
    clamped = query.limit is None or query.limit > most
    query = replace(query, limit=most if query.limit is None else min(query.limit, most))
    try:
        refs = ctx.db.find(query)
    except DatabaseError as exc:
        raise HTTPException(400, public_text(str(exc))) from None
    results = []
    root = ctx.base_url(request)  # once, not per result
    for ref in refs:
        obj = dict(ref.json)
        if query.level is not Level.PATIENT:
            obj.update(_extra(ctx, obj, query.level, query.include_fields))
        obj.setdefault("00081190", _retrieve_url(root, obj, query.level)["00081190"])
        results.append(dict(sorted(obj.items())))
    headers = {}
    if clamped and len(results) >= most:
        headers["Warning"] = (
            f'299 dicomstation "at most {most} results per answer; use offset for more"'
        )
    return JSONResponse(results, media_type=DICOM_JSON, headers=headers)


def qido_router(ctx: ServerContext) -> APIRouter:
    """Routes for QIDO-RS searches."""
    router = APIRouter()

    @router.get("/studies")
    def search_studies(request: Request) -> JSONResponse:
        return _run(ctx, request, parse_query(request, Level.STUDY))

    @router.get("/series")
    def search_all_series(request: Request) -> JSONResponse:
        return _run(ctx, request, parse_query(request, Level.SERIES))

    @router.get("/studies/{study}/series")
    def search_series(study: str, request: Request) -> JSONResponse:
        query = parse_query(request, Level.SERIES, check_uid(study, "StudyInstanceUID"))
        return _run(ctx, request, query)

    @router.get("/instances")
    def search_all_instances(request: Request) -> JSONResponse:
        return _run(ctx, request, parse_query(request, Level.IMAGE))

    @router.get("/studies/{study}/instances")
    def search_study_instances(study: str, request: Request) -> JSONResponse:
        query = parse_query(request, Level.IMAGE, check_uid(study, "StudyInstanceUID"))
        return _run(ctx, request, query)

    @router.get("/studies/{study}/series/{series}/instances")
    def search_instances(study: str, series: str, request: Request) -> JSONResponse:
        query = parse_query(
            request,
            Level.IMAGE,
            check_uid(study, "StudyInstanceUID"),
            check_uid(series, "SeriesInstanceUID"),
        )
        return _run(ctx, request, query)

    return router
