"""STOW-RS (PS3.18 10.5) into the local database.

The request body is streamed through :func:`dicomstation.nodes.multipart.iter_parts`
(the same streaming parser the DICOMweb client uses) into one temp file per part
under ``<db>/incoming``; nothing is indexed until the whole body has arrived and
parsed, so a malformed, truncated or oversized request stores nothing. Complete
parts are then checked and handed to ``db.add_files``, and the answer lists every
instance as stored or failed (FailedSOPSequence).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from dicomstation.errors import ProtocolError
from dicomstation.nodes.multipart import iter_parts, parse_content_type
from dicomstation.server.context import ServerContext
from dicomstation.server.public import public_text
from dicomstation.server.qido import DICOM_JSON
from dicomstation.server.stow_check import PartResult, check_parts
from dicomstation.server.uids import check_uid

__all__ = ["stow_router"]

_OPERATION = "STOW-RS request"


def _boundary(content_type: str) -> str | None:
    """The multipart boundary, or None for a single ``application/dicom`` body."""
    media, params = parse_content_type(content_type)
    if media == "application/dicom":
        return None
    if media != "multipart/related":
        raise HTTPException(
            415,
            'STOW-RS needs multipart/related; type="application/dicom", '
            f"not {content_type or 'no content type'!r}",
        )
    part_type = params.get("type", "application/dicom").strip('"').lower()
    if part_type != "application/dicom":
        raise HTTPException(
            415,
            f"unsupported part type {part_type!r}: only "
            "application/dicom (binary DICOM) is accepted",
        )
    boundary = params.get("boundary", "").strip('"')
    if not boundary or len(boundary) > 200:
        raise HTTPException(400, "malformed multipart: no valid boundary in Content-Type")
    return boundary


def _check_length(request: Request, limit: int) -> None:
    length = request.headers.get("content-length")
    if length is not None and length.isascii() and length.isdigit() and int(length) > limit:
        raise HTTPException(413, f"request of {int(length)} bytes exceeds the limit of {limit}")


def _sync_chunks(stream: AsyncIterator[bytes], limit: int) -> Iterator[bytes]:
    """The request body, pulled from the event loop into this worker thread, size-checked."""

    async def pull() -> bytes | None:
        try:
            return await stream.__anext__()
        except StopAsyncIteration:
            return None

    total = 0
    while (chunk := anyio.from_thread.run(pull)) is not None:
        total += len(chunk)
        if total > limit:
            raise HTTPException(413, f"request exceeds the limit of {limit} bytes")
        yield chunk


def _write(path: Path, chunks: Iterator[bytes]) -> None:
    with path.open("wb") as handle:
        for chunk in chunks:
            handle.write(chunk)


def receive(
    chunks: Iterator[bytes], boundary: str | None, folder: Path, max_parts: int
) -> list[Path]:
    """Write each part of the body to its own file; 4xx for malformed bodies or too many parts."""
    files: list[Path] = []
    if boundary is None:
        files.append(folder / "part-000000.dcm")
        _write(files[0], chunks)
        return files
    try:
        for part in iter_parts(chunks, boundary, server="client", operation=_OPERATION):
            if len(files) >= max_parts:
                raise HTTPException(413, f"too many parts (limit {max_parts} per request)")
            files.append(folder / f"part-{len(files):06d}.dcm")
            _write(files[-1], part.chunks())
    except ProtocolError as exc:
        raise HTTPException(400, f"malformed multipart body: {exc}") from None
    if not files:
        raise HTTPException(400, "the request contains no DICOM part")
    return files


def _sequence(items: list[PartResult], failed: bool) -> dict[str, Any]:
    out = []
    for item in items:
        entry: dict[str, Any] = {
            "00081150": {"vr": "UI", "Value": [item.sop_class]},
            "00081155": {"vr": "UI", "Value": [item.sop_instance]},
        }
        if failed:
            entry["00081197"] = {"vr": "US", "Value": [item.failure]}
        else:
            entry["00081190"] = {"vr": "UR", "Value": [item.url]}
        out.append(entry)
    return {"vr": "SQ", "Value": out}


def _answer(results: list[PartResult], study_url: str | None) -> JSONResponse:
    stored = [r for r in results if r.failure == 0]
    failed = [r for r in results if r.failure != 0]
    body: dict[str, Any] = {}
    if study_url:  # the study stored into (PS3.18 10.5.3.1: RetrieveURL of the study)
        body["00081190"] = {"vr": "UR", "Value": [study_url]}
    if failed:
        body["00081198"] = _sequence(failed, True)
    if stored:
        body["00081199"] = _sequence(stored, False)
    status = 200 if not failed else 202 if stored else 409
    headers = {}
    if failed:
        reasons = "; ".join(f"part {r.index + 1}: {public_text(r.reason)}" for r in failed[:5])
        reasons = reasons.replace('"', "'").replace("\\", "/")
        headers["Warning"] = f'299 dicomstation "{reasons[:900]}"'
    return JSONResponse(body, status_code=status, media_type=DICOM_JSON, headers=headers)


async def store(ctx: ServerContext, request: Request, study: str | None) -> JSONResponse:
    """Receive, check and index the instances of one STOW-RS request.

    The upload holds one of ``max_uploads`` slots (at most ``max_uploads_per_client``
    from one address) and runs on the uploads' own threads, never the shared pool.
    """
    if study is not None:
        check_uid(study, "StudyInstanceUID")
    _check_length(request, ctx.options.max_request_bytes)
    boundary = _boundary(request.headers.get("content-type", ""))
    client = request.client.host if request.client else ""

    def work(folder: Path) -> list[PartResult]:
        chunks = _sync_chunks(request.stream(), ctx.options.max_request_bytes)
        files = receive(chunks, boundary, folder, ctx.options.max_parts)
        return check_parts(ctx, request, files, study)

    async with ctx.uploads.slot(client):
        folder = ctx.db.staging_dir("stow")
        try:
            results = await anyio.to_thread.run_sync(work, folder, limiter=ctx.uploads.limiter)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    studies = {r.study for r in results if r.failure == 0 and r.study}
    target = study or (studies.pop() if len(studies) == 1 else None)
    return _answer(results, ctx.study_url(request, target) if target else None)


def stow_router(ctx: ServerContext) -> APIRouter:
    """Routes for STOW-RS."""
    router = APIRouter()

    @router.post("/studies")
    async def store_instances(request: Request) -> JSONResponse:
        return await store(ctx, request, None)

    @router.post("/studies/{study}")
    async def store_study_instances(study: str, request: Request) -> JSONResponse:
        return await store(ctx, request, study)

    return router
