"""WADO-RS (PS3.18 10.4): instances, series and studies as multipart/related; metadata.

Files are streamed from disk as stored when the client asks for
``transfer-syntax=*`` (or the stored syntax). Without a transfer-syntax parameter,
or with Explicit VR Little Endian, instances stored otherwise are re-encoded
(:mod:`dicomstation.server.transcode`); any other specific transfer syntax the
files are not in is refused with 406. Files stored without a File Meta header
are always served as valid Part 10 files.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse

from dicomstation.models import InstanceRef
from dicomstation.nodes.multipart import (
    close_delimiter,
    iter_multipart,
    multipart_content_type,
    new_boundary,
    part_head,
)
from dicomstation.server.accept import EXPLICIT_LE, Acceptable, parse_accept, require_json
from dicomstation.server.bulk import with_bulk_uris
from dicomstation.server.context import ServerContext
from dicomstation.server.lookup import instance_refs, transfer_syntax
from dicomstation.server.pixels import EAGER_BYTES
from dicomstation.server.qido import DICOM_JSON
from dicomstation.server.transcode import explicit_le_bytes, needs_rewrite, stored_bytes

__all__ = ["choose_syntax", "wado_router"]

DICOM = "application/dicom"
PartSpec = tuple[Mapping[str, str], Iterable[bytes]]
_WHOLE_FILE = 16 << 20
_SMALL = 64 << 10


def choose_syntax(accept: list[Acceptable], stored: set[str]) -> str | None:
    """The transfer syntax to send (None: as stored); 406 when nothing acceptable is possible.

    No transfer-syntax parameter means Explicit VR Little Endian (PS3.18 8.7.3.5.2);
    ``transfer-syntax=*`` means as stored.
    """
    for item in accept:
        if item.media_type not in (DICOM, "application/*", "*/*") or not item.multipart:
            continue
        syntax = item.transfer_syntax or EXPLICIT_LE
        if syntax == "*" or stored <= {syntax}:
            return None
        if syntax == EXPLICIT_LE:
            return EXPLICIT_LE
    raise HTTPException(
        406,
        "cannot provide the requested representation: use "
        'multipart/related; type="application/dicom" with transfer-syntax=* '
        f"or {EXPLICIT_LE} (stored: {', '.join(sorted(stored)) or 'unknown'})",
    )


def _file_body(path: Path) -> Iterable[bytes]:
    """A file as one block when small (one write per instance), else in 4 MiB chunks."""
    if path.stat().st_size <= _WHOLE_FILE:
        return [path.read_bytes()]
    return _chunks(path)


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while block := handle.read(4 << 20):
            yield block


def _one_part(ctx: ServerContext, ref: InstanceRef, syntax: str | None) -> PartSpec:
    """One instance as a part: the file as stored, or re-encoded (made before returning)."""
    path = ctx.db.instance_path(ref.sop_instance_uid)
    stored = transfer_syntax(ref)
    if syntax is not None and stored != syntax:
        return {"Content-Type": f"{DICOM}; transfer-syntax={syntax}"}, [explicit_le_bytes(path)]
    if needs_rewrite(path):  # no File Meta: label it with the syntax actually written
        data, written = stored_bytes(path)
        return {"Content-Type": f"{DICOM}; transfer-syntax={written}"}, [data]
    kind = f"{DICOM}; transfer-syntax={stored}" if stored else DICOM
    return {"Content-Type": kind}, _file_body(path)


def _parts(ctx: ServerContext, refs: list[InstanceRef], syntax: str | None) -> Iterator[PartSpec]:
    """The parts; the first re-encoded ones made now, so a failure is an error answer, not a 200.

    Instances are re-encoded before the answer starts until :data:`EAGER_BYTES`
    are held; later ones are made as the answer streams (a failure then ends the
    connection without the close delimiter, which clients report as an error).
    """
    if syntax is None:  # files as stored: read as the answer streams
        return (_one_part(ctx, ref, None) for ref in refs)
    ready: list[PartSpec] = []
    held = 0
    for position, ref in enumerate(refs):
        if held >= EAGER_BYTES:
            rest = (_one_part(ctx, r, syntax) for r in refs[position:])
            return itertools.chain(ready, rest)
        head, body = _one_part(ctx, ref, syntax)
        held += sum(len(b) for b in body) if isinstance(body, list) else 0
        ready.append((head, body))
    return iter(ready)


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


def _length(ctx: ServerContext, refs: list[InstanceRef], boundary: str) -> int | None:
    """Exact body length when files are sent as stored (None when one must be rewritten)."""
    total = len(close_delimiter(boundary))
    for ref in refs:
        stored = transfer_syntax(ref)
        kind = f"{DICOM}; transfer-syntax={stored}" if stored else DICOM
        path = ctx.db.instance_path(ref.sop_instance_uid)
        if needs_rewrite(path):
            return None
        total += len(part_head(boundary, {"Content-Type": kind})) + path.stat().st_size + 2
    return total


def retrieve(ctx: ServerContext, request: Request, refs: list[InstanceRef]) -> StreamingResponse:
    """Stream the instances as one multipart/related response."""
    stored = {transfer_syntax(r) for r in refs} - {""}
    syntax = choose_syntax(parse_accept(request.headers.get("accept"), DICOM), stored)
    boundary = new_boundary()
    length = _length(ctx, refs, boundary) if syntax is None else None
    headers = {} if length is None else {"Content-Length": str(length)}
    return StreamingResponse(
        _coalesce(iter_multipart(_parts(ctx, refs, syntax), boundary)),
        media_type=multipart_content_type(boundary, DICOM),
        headers=headers,
    )


def metadata(
    ctx: ServerContext,
    request: Request,
    study: str,
    series: str | None = None,
    sop: str | None = None,
) -> JSONResponse:
    """DICOM JSON of every instance, with a BulkDataURI for each bulk value it has."""
    require_json(request.headers.get("accept"))
    instance_refs(ctx, study, series, sop)  # 404 and hierarchy checks
    headers = ctx.db.metadata(study, series)
    out = []
    for header in headers:
        if sop and header.get("00080018", {}).get("Value") != [sop]:
            continue
        # no file meta, no group lengths (gggg,0000: retired, lengths of the file's encoding)
        item = {k: v for k, v in header.items() if not k.startswith("0002") and k[4:] != "0000"}
        url = ctx.instance_url(
            request, _first(item, "0020000D"), _first(item, "0020000E"), _first(item, "00080018")
        )
        out.append(dict(sorted(with_bulk_uris(item, url).items())))
    return JSONResponse(out, media_type=DICOM_JSON)


def _first(header: Mapping[str, Any], tag: str) -> str:
    value = header.get(tag, {}).get("Value", [""])
    return str(value[0]) if value else ""


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
