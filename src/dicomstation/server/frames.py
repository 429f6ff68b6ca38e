"""WADO-RS frames and bulk data (PS3.18 10.4.1.1.5-6).

Native pixel data is sliced per frame; encapsulated frames are sent as stored
(``image/jpeg``, ``image/jls``...) when the client accepts that, or decoded by
pydicom into native bytes when it only accepts ``application/octet-stream``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pydicom
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels.utils import pixel_array

from dicomstation.nodes.multipart import iter_multipart, multipart_content_type, new_boundary
from dicomstation.server.accept import Acceptable, parse_accept
from dicomstation.server.context import ServerContext
from dicomstation.server.lookup import one_instance

__all__ = ["frames_router", "parse_frame_list", "syntax_media_type"]

OCTET = "application/octet-stream"
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


def _frame_count(ds: Dataset) -> int:
    return int(getattr(ds, "NumberOfFrames", 1) or 1)


def _keep_encapsulated(accept: list[Acceptable], media: str) -> bool:
    return any(
        a.transfer_syntax == "*" or a.media_type in (media, "*/*", "image/*") for a in accept
    )


def _frames(ds: Dataset, numbers: list[int], encoded: bool) -> Iterator[bytes]:
    count = _frame_count(ds)
    syntax = ds.file_meta.TransferSyntaxUID
    if syntax.is_compressed and encoded:
        for n in numbers:
            yield get_frame(ds.PixelData, n - 1, number_of_frames=count)
    elif syntax.is_compressed:
        for n in numbers:
            yield pixel_array(ds, index=n - 1).tobytes()
    else:
        size = len(ds.PixelData) // count
        for n in numbers:
            yield bytes(ds.PixelData[(n - 1) * size : n * size])


def frames_response(path: str, numbers_text: str, accept_header: str | None) -> StreamingResponse:
    """Frames of one instance as multipart/related."""
    ds = pydicom.dcmread(path)
    if "PixelData" not in ds:
        raise HTTPException(404, f"instance {ds.SOPInstanceUID} has no pixel data")
    numbers = parse_frame_list(numbers_text, _frame_count(ds))
    syntax = str(ds.file_meta.TransferSyntaxUID)
    accept = parse_accept(accept_header, OCTET)
    media = syntax_media_type(syntax)
    encoded = media != OCTET and _keep_encapsulated(accept, media)
    part_type = f"{media}; transfer-syntax={syntax}" if encoded else OCTET
    boundary = new_boundary()
    parts = (({"Content-Type": part_type}, [data]) for data in _frames(ds, numbers, encoded))
    return StreamingResponse(
        iter_multipart(parts, boundary),
        media_type=multipart_content_type(boundary, part_type.split(";")[0]),
    )


def frames_router(ctx: ServerContext) -> APIRouter:
    """Routes for frames and bulk data."""
    router = APIRouter()

    @router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frames}")
    def retrieve_frames(
        study: str, series: str, sop: str, frames: str, request: Request
    ) -> StreamingResponse:
        _ref, path = one_instance(ctx, study, series, sop)
        return frames_response(str(path), frames, request.headers.get("accept"))

    @router.get("/studies/{study}/series/{series}/instances/{sop}/bulkdata/{tag}")
    def retrieve_bulkdata(study: str, series: str, sop: str, tag: str) -> StreamingResponse:
        _ref, path = one_instance(ctx, study, series, sop)
        try:
            key = int(tag, 16)
        except ValueError:
            raise HTTPException(400, f"invalid tag {tag!r}: use 8 hex digits") from None
        ds = pydicom.dcmread(path)
        if key not in ds or not isinstance(ds[key].value, bytes):
            raise HTTPException(404, f"instance {sop} has no bulk data at {tag}")
        boundary = new_boundary()
        part = ({"Content-Type": OCTET}, [ds[key].value])
        return StreamingResponse(
            iter_multipart([part], boundary), media_type=multipart_content_type(boundary, OCTET)
        )

    return router
