"""STOW-RS (PS3.18 10.5) into the local database.

The request body is streamed through python-multipart's parser into one temp
file per part under ``<db>/incoming``; nothing is indexed until the whole body
has arrived and parsed, so a malformed, truncated or oversized request stores
nothing. Complete parts are then checked and handed to ``db.add_files``, and
the answer lists every instance as stored or failed (FailedSOPSequence).
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from dicomstation.server.context import ServerContext
from dicomstation.server.qido import DICOM_JSON
from dicomstation.server.stow_check import PartResult, check_parts
from dicomstation.server.uids import check_uid

__all__ = ["stow_router"]


@dataclass
class _Sink:
    """Collects parts to files; enforces the part count."""

    folder: Path
    max_parts: int
    files: list[Path]
    current: BinaryIO | None = None
    ended: bool = False

    def begin(self) -> None:
        if len(self.files) >= self.max_parts:
            raise HTTPException(413, f"too many parts (limit {self.max_parts} per request)")
        path = self.folder / f"part-{len(self.files):06d}.dcm"
        self.files.append(path)
        self.current = path.open("wb")

    def data(self, data: bytes, start: int, end: int) -> None:
        if self.current is not None:
            self.current.write(data[start:end])

    def end(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None

    def finish(self) -> None:
        self.ended = True


def _boundary(request: Request) -> bytes | None:
    """The multipart boundary, or None for a single ``application/dicom`` body."""
    raw = request.headers.get("content-type", "")
    ctype, params = parse_options_header(raw)
    if ctype == b"application/dicom":
        return None
    if ctype != b"multipart/related":
        raise HTTPException(415, f"STOW-RS needs multipart/related; type=\"application/dicom\", "
                                 f"not {raw or 'no content type'!r}")
    part_type = params.get(b"type", b"application/dicom").lower()
    if part_type != b"application/dicom":
        raise HTTPException(415, f"unsupported part type {part_type.decode()!r}: only "
                                 "application/dicom (binary DICOM) is accepted")
    boundary = params.get(b"boundary")
    if not boundary:
        raise HTTPException(400, "malformed multipart: no boundary in Content-Type")
    return boundary


def _check_length(request: Request, limit: int) -> None:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise HTTPException(413, f"request of {int(length)} bytes exceeds the limit of {limit}")


async def receive(request: Request, folder: Path, limit: int, max_parts: int) -> list[Path]:
    """Stream the body into part files; raise 4xx for oversized or malformed bodies."""
    _check_length(request, limit)
    boundary = _boundary(request)
    sink = _Sink(folder, max_parts, [])
    parser = None
    if boundary is not None:
        callbacks: Any = {"on_part_begin": sink.begin, "on_part_data": sink.data,
                          "on_part_end": sink.end, "on_end": sink.finish}
        parser = MultipartParser(boundary, callbacks)
    else:
        sink.begin()
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise HTTPException(413, f"request exceeds the limit of {limit} bytes")
            if parser is not None:
                parser.write(chunk)
            else:
                sink.data(chunk, 0, len(chunk))
    except MultipartParseError as exc:
        raise HTTPException(400, f"malformed multipart body: {exc}") from None
    finally:
        sink.end()
    if parser is not None and not sink.ended:
        raise HTTPException(400, "malformed multipart body: truncated (no closing boundary)")
    if not sink.files:
        raise HTTPException(400, "the request contains no DICOM part")
    return sink.files


def _sequence(items: list[PartResult], failed: bool) -> dict[str, Any]:
    out = []
    for item in items:
        entry: dict[str, Any] = {"00081150": {"vr": "UI", "Value": [item.sop_class]},
                                 "00081155": {"vr": "UI", "Value": [item.sop_instance]}}
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
    if study_url:
        body["00081190"] = {"vr": "UR", "Value": [study_url]}
    if failed:
        body["00081198"] = _sequence(failed, True)
    if stored:
        body["00081199"] = _sequence(stored, False)
    status = 200 if not failed else 202 if stored else 409
    headers = {}
    if failed:
        reasons = "; ".join(f"part {r.index + 1}: {r.reason}" for r in failed[:5])
        headers["Warning"] = f'299 dicomstation "{reasons[:900]}"'
    return JSONResponse(body, status_code=status, media_type=DICOM_JSON, headers=headers)


async def store(ctx: ServerContext, request: Request, study: str | None) -> JSONResponse:
    """Receive, check and index the instances of one STOW-RS request."""
    if study is not None:
        check_uid(study, "StudyInstanceUID")
    folder = ctx.db.root / "incoming" / f"stow-{uuid.uuid4().hex}"
    folder.mkdir(parents=True)
    try:
        files = await receive(request, folder, ctx.options.max_request_bytes,
                              ctx.options.max_parts)
        results = await run_in_threadpool(check_parts, ctx, request, files, study)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return _answer(results, ctx.study_url(request, study) if study else None)


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
