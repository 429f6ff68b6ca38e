"""UPS-RS (PS3.18 §11, PS3.4 Annex CC) on the DICOMweb server: the worklist of automated tasks.

Routes, relative to the DICOMweb root:

===============================================  ===========================================
``POST /workitems{?workitem}``                    create (201, ``Location``; 409 if it exists)
``GET /workitems{?match,limit,offset}``           search (QIDO-like matching; 204 when none)
``GET /workitems/{uid}``                          retrieve (no Transaction UID in it)
``POST /workitems/{uid}{?transaction}``           update (the owner only when IN PROGRESS)
``PUT /workitems/{uid}/state``                    claim / complete / cancel, with (0008,1195)
``POST /workitems/{uid}/cancelrequest``           request cancellation (202)
``POST|DELETE /workitems/{uid}/subscribers/{aet}``  subscribe / unsubscribe (``uid`` may be
                                                  the global subscription UID)
``WS /subscribers/{aet}``                         the event channel (event reports as JSON)
===============================================  ===========================================

Errors carry a ``Warning: 299 dicomstation "..."`` header and a JSON ``detail``.
A second claim of an IN PROGRESS workitem is 409; a missing Transaction UID is
400, a wrong one 409. ``?lease=SECONDS`` (an extension) on the state change and
on updates asks for a lease shorter than the server's (see :mod:`.ups_store`).
Authentication is the server's: HTTP routes pass the guard; the WebSocket
channel checks the same credentials itself (the guard only sees HTTP).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any

from fastapi import APIRouter, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.websockets import WebSocketDisconnect

from dicomstation.dicomjson import tag_hex
from dicomstation.server.access import Access, host_allowed, request_origin
from dicomstation.server.context import ServerContext
from dicomstation.server.ups_match import matches, parse_search
from dicomstation.server.ups_store import TRANSACTION, UpsError, UpsStore

__all__ = ["ups_router"]

MAX_BODY = 1 << 20
MAX_CHANNELS = 32
_JSON = "application/dicom+json"
_AET_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _-.")


def _error(exc: UpsError) -> JSONResponse:
    text = str(exc).replace('"', "'")
    return JSONResponse(
        {"detail": str(exc)}, exc.status, headers={"Warning": f'299 dicomstation "{text}"'}
    )


async def _dataset(request: Request) -> dict[str, Any]:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise UpsError(413, f"workitem larger than {MAX_BODY} bytes")
    try:
        parsed = json.loads(bytes(body) or b"null")
    except (ValueError, UnicodeDecodeError):
        raise UpsError(400, "the body is not JSON") from None
    if isinstance(parsed, list) and len(parsed) == 1:
        parsed = parsed[0]
    if not isinstance(parsed, dict) or not all(
        isinstance(k, str) and len(k) == 8 and isinstance(v, dict) for k, v in parsed.items()
    ):
        raise UpsError(400, "the body must be one DICOM JSON dataset (PS3.18 F.2)")
    return parsed


def _string(dataset: dict[str, Any], keyword: str) -> str | None:
    value = dataset.get(tag_hex(keyword), {}).get("Value") or [None]
    return None if value[0] is None else str(value[0])


def _lease(request: Request) -> float | None:
    raw = request.query_params.get("lease")
    try:
        return float(raw) if raw else None
    except ValueError:
        raise UpsError(400, f"lease {raw!r} is not a number of seconds") from None


def _valid_uid(uid: str) -> bool:
    return 0 < len(uid) <= 64 and all(p.isdigit() for p in uid.split("."))


def _check_aet(aet: str) -> str:
    if not 0 < len(aet) <= 16 or not set(aet) <= _AET_CHARS:
        raise UpsError(400, f"{aet!r} is not an AE title")
    return aet


def ups_router(ctx: ServerContext, store: UpsStore) -> APIRouter:
    """UPS-RS routes over ``store`` (see the module docstring)."""
    router = APIRouter()
    _create_routes(router, ctx, store)
    _state_routes(router, store)
    _subscription_routes(router, ctx, store)
    return router


def _create_routes(router: APIRouter, ctx: ServerContext, store: UpsStore) -> None:
    @router.post("/workitems")
    async def create(request: Request) -> Response:
        try:
            dataset = await _dataset(request)
            state = _string(dataset, "ProcedureStepState")
            if state != "SCHEDULED":
                raise UpsError(400, f"a new workitem must be SCHEDULED, not {state!r}")
            if TRANSACTION in dataset:
                raise UpsError(400, "a new workitem must not carry a Transaction UID")
            bare = request.url.query if "=" not in request.url.query else ""  # ?{uid}
            uid = request.query_params.get("workitem") or bare or None
            uid = uid or _string(dataset, "SOPInstanceUID")
            if uid and not _valid_uid(uid):
                raise UpsError(400, f"workitem UID {uid[:70]!r} is not a valid UID")
            uid = await asyncio.to_thread(store.create, uid, dataset)
        except UpsError as exc:
            return _error(exc)
        url = f"{ctx.base_url(request)}/workitems/{uid}"
        return Response(status_code=201, headers={"Location": url, "Content-Location": url})

    @router.get("/workitems")
    async def search(request: Request) -> Response:
        try:
            query = parse_search(request.query_params.multi_items())
        except UpsError as exc:
            return _error(exc)
        items = await asyncio.to_thread(store.all, query.state)
        found = [query.project(d) for d in items if matches(d, query)]
        found = found[query.offset : query.offset + query.limit]
        if not found:
            return Response(status_code=204)
        return JSONResponse(found, media_type=_JSON)

    @router.get("/workitems/{uid}")
    async def retrieve(uid: str) -> Response:
        try:
            dataset = await asyncio.to_thread(store.get, uid)
        except UpsError as exc:
            return _error(exc)
        return JSONResponse([dataset], media_type=_JSON)

    @router.post("/workitems/{uid}")
    async def update(uid: str, request: Request) -> Response:
        try:
            changes = await _dataset(request)
            txn = request.query_params.get("transaction")
            await asyncio.to_thread(store.update, uid, txn, changes, _lease(request))
        except UpsError as exc:
            return _error(exc)
        return Response(status_code=200)


def _state_routes(router: APIRouter, store: UpsStore) -> None:
    @router.put("/workitems/{uid}/state")
    async def change_state(uid: str, request: Request) -> Response:
        try:
            body = await _dataset(request)
            state = _string(body, "ProcedureStepState") or ""
            txn = _string(body, "TransactionUID")
            await asyncio.to_thread(store.change_state, uid, txn, state, _lease(request))
        except UpsError as exc:
            return _error(exc)
        return Response(status_code=200)

    @router.post("/workitems/{uid}/cancelrequest")
    async def cancel_request(uid: str, request: Request) -> Response:
        try:
            body = await _dataset(request) if await request.body() else {}
            reason = _string(body, "ReasonForCancellation") or ""
            await asyncio.to_thread(store.request_cancel, uid, reason)
        except UpsError as exc:
            return _error(exc)
        return Response(status_code=202)


def _subscription_routes(router: APIRouter, ctx: ServerContext, store: UpsStore) -> None:
    @router.post("/workitems/{uid}/subscribers/{aet}")
    async def subscribe(uid: str, aet: str, request: Request) -> Response:
        lock = request.query_params.get("deletionlock", "false").lower() == "true"
        try:
            await asyncio.to_thread(store.subscribe, _check_aet(aet), uid, lock)
        except UpsError as exc:
            return _error(exc)
        return Response(status_code=201)

    @router.delete("/workitems/{uid}/subscribers/{aet}")
    async def unsubscribe(uid: str, aet: str) -> Response:
        try:
            await asyncio.to_thread(store.unsubscribe, _check_aet(aet), uid)
        except UpsError as exc:
            return _error(exc)
        return Response(status_code=200)

    access = Access(ctx.options)
    open_channels = [0]

    @router.websocket("/subscribers/{aet}")
    async def channel(websocket: WebSocket, aet: str) -> None:
        if not _ws_allowed(websocket, access):
            await websocket.close(code=1008)
            return
        if open_channels[0] >= MAX_CHANNELS:
            await websocket.close(code=1013)  # try again later
            return
        open_channels[0] += 1
        try:
            await _serve_channel(websocket, aet, store)
        finally:
            open_channels[0] -= 1


async def _serve_channel(websocket: WebSocket, aet: str, store: UpsStore) -> None:
    """Send ``aet``'s event reports from now on, until the client goes."""
    await websocket.accept()
    seq = await asyncio.to_thread(store.last_event)
    try:
        while True:
            events = await asyncio.to_thread(store.events_for, aet, seq)
            for event in events:
                await websocket.send_text(json.dumps(event.report))
                seq = event.seq
            if not events and await _closed(websocket):
                return
    except (WebSocketDisconnect, RuntimeError, sqlite3.Error):
        return


async def _closed(websocket: WebSocket) -> bool:
    """Wait up to 0.2 s for the client to go (the store is shared by processes: it is polled)."""
    try:
        message = await asyncio.wait_for(websocket.receive(), 0.2)
    except TimeoutError:
        return False
    return bool(message["type"] == "websocket.disconnect")


def _ws_allowed(websocket: WebSocket, access: Access) -> bool:
    """The guard's checks for a WebSocket: Host, origin, credentials."""
    headers = Headers(scope=websocket.scope)
    options = access.options
    if not host_allowed(options, headers.get("host", "")):
        return False
    own = request_origin("https" if websocket.url.scheme == "wss" else "http", headers)
    origin = headers.get("origin")
    if origin is not None and origin != own and origin not in options.cors_origins:
        return False
    port = int((websocket.scope.get("server") or ("", 0))[1] or 0)
    return access.authorized(headers, websocket.scope.get("query_string", b""), port, own)
