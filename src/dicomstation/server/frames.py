"""WADO-RS frames and bulk data (PS3.18 10.4.1.1.5-6).

Accept decides the representation (PS3.18 8.7.3), and what cannot be given is
refused with 406 naming what can be:

- ``application/octet-stream`` (the default; with no transfer-syntax or Explicit
  VR Little Endian): native little-endian frames; encapsulated frames decoded by
  pydicom (:mod:`dicomstation.server.pixels`);
- ``*/*`` (also as the part type) or any type with ``transfer-syntax=*``: as stored;
- the stored frame media type (``image/jpeg`` for JPEG, ``image/jls``, ``image/jp2``,
  ``image/x-dicom-rle``...), with no transfer-syntax or the stored one: as stored.

Frames are never transcoded to another compressed syntax: ``image/jpeg`` for a
JPEG 2000 or native instance, or an explicit JPEG syntax the instance is not in,
gets 406. Bulk data URIs address top-level values (``bulkdata/60003000``) and
values inside sequences (``bulkdata/54000100/0/54001010``: tag, item index, tag).
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydicom.dataset import Dataset

from dicomstation.database.headers import stored_syntax
from dicomstation.nodes.multipart import iter_multipart, multipart_content_type, new_boundary
from dicomstation.server.accept import EXPLICIT_LE, Acceptable, parse_accept
from dicomstation.server.bulk import bulk_value
from dicomstation.server.context import ServerContext
from dicomstation.server.lookup import one_instance
from dicomstation.server.pixels import frame_count, frame_iter, native_value, pixel_keyword
from dicomstation.server.stored import read_stored

__all__ = ["frames_router", "negotiate_frames", "parse_frame_list", "syntax_media_type"]

OCTET = "application/octet-stream"
_NATIVE_LE = (None, EXPLICIT_LE, "1.2.840.10008.1.2")  # the same frame bytes
_MEDIA = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/x-dicom-rle",
}


def syntax_media_type(syntax: str) -> str:
    """The frame media type of a transfer syntax (octet-stream for native ones)."""
    return _MEDIA.get(syntax, OCTET)


def parse_frame_list(text: str, count: int) -> list[int]:
    """Parse ``"1,3,5"`` into frame numbers (1-based), each within ``1..count``."""
    numbers: list[int] = []
    for item in text.split(","):
        item = item.strip()
        if not item.isascii() or not item.isdigit() or int(item) < 1:
            raise HTTPException(400, f"invalid frame number {item!r}: frames are numbered from 1")
        if int(item) > count:
            raise HTTPException(404, f"frame {item} does not exist (the instance has {count})")
        numbers.append(int(item))
    return numbers


def _fits(item: Acceptable, syntax: str, media: str) -> bool | None:
    """True: as stored; False: native/decoded; None: this item cannot be served."""
    if item.transfer_syntax == "*" or (item.media_type == "*/*" and not item.transfer_syntax):
        return media != OCTET
    if item.media_type in (OCTET, "application/*"):
        return False if item.transfer_syntax in _NATIVE_LE else None
    if media != OCTET and item.media_type in (media, "image/*"):
        return True if item.transfer_syntax in (None, syntax) else None
    return None


def negotiate_frames(accept_header: str | None, syntax: str) -> tuple[bool, str]:
    """(as stored?, part Content-Type) for frames of an instance stored in ``syntax``.

    Raises
    ------
    fastapi.HTTPException
        406 when no acceptable representation can be given, naming those that can.
    """
    media = syntax_media_type(syntax)
    for item in parse_accept(accept_header, OCTET):
        encoded = _fits(item, syntax, media)
        if encoded is not None:
            part = f"{media}; transfer-syntax={syntax}" if encoded else OCTET
            return encoded, part
    offer = f"{OCTET} (uncompressed)" + (
        f" or {media}; transfer-syntax={syntax} (as stored)" if media != OCTET else ""
    )
    raise HTTPException(406, f"cannot provide the frames as {accept_header!r}; available: {offer}")


def _pixel_dataset(path: str) -> Dataset:
    ds = read_stored(path)
    if pixel_keyword(ds) is None:
        raise HTTPException(404, f"instance {ds.SOPInstanceUID} has no pixel data")
    return ds


def _multipart(parts: Iterator[bytes], part_type: str) -> StreamingResponse:
    boundary = new_boundary()
    body = iter_multipart((({"Content-Type": part_type}, [data]) for data in parts), boundary)
    media = part_type.split(";")[0]
    return StreamingResponse(body, media_type=multipart_content_type(boundary, media))


def frames_response(path: str, numbers_text: str, accept_header: str | None) -> StreamingResponse:
    """Frames of one instance as multipart/related (decided before the answer starts)."""
    ds = _pixel_dataset(path)
    numbers = parse_frame_list(numbers_text, frame_count(ds))
    encoded, part_type = negotiate_frames(accept_header, str(stored_syntax(ds)))
    frames = frame_iter(ds, [n - 1 for n in numbers], encoded)
    return _multipart(frames, part_type)


def _pixel_bulk(path: str, accept_header: str | None) -> StreamingResponse:
    """All of the pixel data: one native part, or one part per frame as stored."""
    ds = _pixel_dataset(path)
    syntax = stored_syntax(ds)
    encoded, part_type = negotiate_frames(accept_header, str(syntax))
    if not syntax.is_compressed:  # the whole value (1-bit frames stay contiguous)
        return _multipart(iter([native_value(ds)]), OCTET)
    frames = frame_iter(ds, list(range(frame_count(ds))), encoded)
    if encoded:
        return _multipart(frames, part_type)
    return _multipart(iter([b"".join(frames)]), OCTET)


def frames_router(ctx: ServerContext) -> APIRouter:
    """Routes for frames and bulk data."""
    router = APIRouter()

    @router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frames}")
    def retrieve_frames(
        study: str, series: str, sop: str, frames: str, request: Request
    ) -> StreamingResponse:
        _ref, path = one_instance(ctx, study, series, sop)
        return frames_response(str(path), frames, request.headers.get("accept"))

    @router.get("/studies/{study}/series/{series}/instances/{sop}/bulkdata/{where:path}")
    def retrieve_bulkdata(
        study: str, series: str, sop: str, where: str, request: Request
    ) -> StreamingResponse:
        _ref, path = one_instance(ctx, study, series, sop)
        if where.upper() in ("7FE00010", "7FE00008", "7FE00009"):
            return _pixel_bulk(str(path), request.headers.get("accept"))
        negotiate_frames(request.headers.get("accept"), EXPLICIT_LE)  # octet-stream only
        value = bulk_value(read_stored(path), where, sop)
        return _multipart(iter([value]), OCTET)

    return router
