"""WADO-RS (PS3.18 10.4): instances, series and studies as multipart/related; metadata.

Files are streamed from disk as stored. A client that asks for Explicit VR
Little Endian gets instances stored otherwise decompressed by pydicom; any
other specific transfer syntax the files are not in is refused with 406.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pydicom
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydicom.uid import UID, ExplicitVRLittleEndian

from dicomstation.models import InstanceRef
from dicomstation.nodes.multipart import (
    close_delimiter,
    iter_multipart,
    multipart_content_type,
    new_boundary,
    part_head,
)
from dicomstation.server.accept import EXPLICIT_LE, Acceptable, parse_accept
from dicomstation.server.context import ServerContext
from dicomstation.server.lookup import instance_refs, transfer_syntax
from dicomstation.server.qido import DICOM_JSON

__all__ = ["choose_syntax", "wado_router"]

DICOM = "application/dicom"
PartSpec = tuple[Mapping[str, str], Iterable[bytes]]
_WHOLE_FILE = 16 << 20
_SMALL = 64 << 10


def choose_syntax(accept: list[Acceptable], stored: set[str]) -> str | None:
    """The transfer syntax to send (None: as stored); 406 when nothing acceptable is possible."""
    for item in accept:
        if item.media_type not in (DICOM, "application/*", "*/*") or not item.multipart:
            continue
        syntax = item.transfer_syntax
        if syntax in (None, "*") or stored <= {syntax}:
            return None
        if syntax == EXPLICIT_LE:
            return EXPLICIT_LE
    raise HTTPException(
        406,
        "cannot provide the requested representation: use "
        'multipart/related; type="application/dicom" with transfer-syntax=* '
        f"or {EXPLICIT_LE} (stored: {', '.join(sorted(stored)) or 'unknown'})",
    )


def _transcoded(path: Path) -> bytes:
    ds = pydicom.dcmread(path)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress(generate_instance_uid=False)  # same instance, not a new one
    ds.file_meta.TransferSyntaxUID = UID(ExplicitVRLittleEndian)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _file_body(path: Path) -> Iterable[bytes]:
    """A file as one block when small (one write per instance), else in 4 MiB chunks."""
    if path.stat().st_size <= _WHOLE_FILE:
        return [path.read_bytes()]
    return _chunks(path)


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while block := handle.read(4 << 20):
            yield block


def _parts(ctx: ServerContext, refs: list[InstanceRef], syntax: str | None) -> Iterator[PartSpec]:
    for ref in refs:
        path = ctx.db.instance_path(ref.sop_instance_uid)
        stored = transfer_syntax(ref)
        if syntax is None or stored == syntax:
            kind = f"{DICOM}; transfer-syntax={stored}" if stored else DICOM
            yield {"Content-Type": kind}, _file_body(path)
        else:
            data = _transcoded(path)
            yield {"Content-Type": f"{DICOM}; transfer-syntax={syntax}"}, [data]


def _coalesce(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Join the writer's small pieces (headers, CRLF) and pass large blocks through uncopied.

    StreamingResponse pulls each item through a thread hop, so a few large
    items per instance are much faster than many small ones.
    """
    pending: list[bytes] = []
    for chunk in chunks:
        if len(chunk) < _SMALL:
            pending.append(chunk)
            continue
        if pending:
            yield b"".join(pending)
            pending = []
        yield chunk
    if pending:
        yield b"".join(pending)


def _length(ctx: ServerContext, refs: list[InstanceRef], boundary: str) -> int:
    """Exact body length when files are sent as stored (no chunked encoding needed)."""
    total = len(close_delimiter(boundary))
    for ref in refs:
        stored = transfer_syntax(ref)
        kind = f"{DICOM}; transfer-syntax={stored}" if stored else DICOM
        size = ctx.db.instance_path(ref.sop_instance_uid).stat().st_size
        total += len(part_head(boundary, {"Content-Type": kind})) + size + 2
    return total


def retrieve(ctx: ServerContext, request: Request, refs: list[InstanceRef]) -> StreamingResponse:
    """Stream the instances as one multipart/related response."""
    stored = {transfer_syntax(r) for r in refs} - {""}
    syntax = choose_syntax(parse_accept(request.headers.get("accept"), DICOM), stored)
    boundary = new_boundary()
    headers = {} if syntax is not None else {"Content-Length": str(_length(ctx, refs, boundary))}
    return StreamingResponse(
        _coalesce(iter_multipart(_parts(ctx, refs, syntax), boundary)),
        media_type=multipart_content_type(boundary, DICOM),
        headers=headers,
    )


def _pixel_uri(ctx: ServerContext, request: Request, header: Mapping[str, Any]) -> dict[str, Any]:
    def first(tag: str) -> str:
        value = header.get(tag, {}).get("Value", [""])
        return str(value[0]) if value else ""

    url = ctx.instance_url(request, first("0020000D"), first("0020000E"), first("00080018"))
    syntax = first("00020010")
    bits = first("00280100")
    native = not syntax or not UID(syntax).is_compressed
    vr = "OW" if native and bits and int(bits) > 8 else "OB"
    return {"vr": vr, "BulkDataURI": f"{url}/bulkdata/7FE00010"}


def metadata(
    ctx: ServerContext,
    request: Request,
    study: str,
    series: str | None = None,
    sop: str | None = None,
) -> JSONResponse:
    """DICOM JSON of every instance, with a BulkDataURI for pixel data."""
    instance_refs(ctx, study, series, sop)  # 404 and hierarchy checks
    headers = ctx.db.metadata(study, series)
    out = []
    for header in headers:
        if sop and header.get("00080018", {}).get("Value") != [sop]:
            continue
        item = {k: v for k, v in header.items() if not k.startswith("0002")}
        if "00280010" in header:
            item["7FE00010"] = _pixel_uri(ctx, request, header)
        out.append(dict(sorted(item.items())))
    return JSONResponse(out, media_type=DICOM_JSON)


def wado_router(ctx: ServerContext) -> APIRouter:
    """Routes for WADO-RS retrieval of instances and metadata."""
    router = APIRouter()

    @router.get("/studies/{study}")
    def retrieve_study(study: str, request: Request) -> StreamingResponse:
        return retrieve(ctx, request, instance_refs(ctx, study))

    @router.get("/studies/{study}/series/{series}")
    def retrieve_series(study: str, series: str, request: Request) -> StreamingResponse:
        return retrieve(ctx, request, instance_refs(ctx, study, series))

    @router.get("/studies/{study}/series/{series}/instances/{sop}")
    def retrieve_instance(study: str, series: str, sop: str, request: Request) -> StreamingResponse:
        return retrieve(ctx, request, instance_refs(ctx, study, series, sop))

    @router.get("/studies/{study}/metadata")
    def study_metadata(study: str, request: Request) -> JSONResponse:
        return metadata(ctx, request, study)

    @router.get("/studies/{study}/series/{series}/metadata")
    def series_metadata(study: str, series: str, request: Request) -> JSONResponse:
        return metadata(ctx, request, study, series)

    @router.get("/studies/{study}/series/{series}/instances/{sop}/metadata")
    def instance_metadata(study: str, series: str, sop: str, request: Request) -> JSONResponse:
        return metadata(ctx, request, study, series, sop)

    return router
