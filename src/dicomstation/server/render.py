"""Rendered images and thumbnails (PS3.18 10.4.1.1.7): JPEG or PNG made by pydicom + Pillow.

Instance, frame, series and study ``/rendered`` (series and study: their middle
instance), ``window``, ``viewport`` and ``quality`` (JPEG) are honoured; an
instance pydicom cannot decode gets 406 naming it, before any byte is sent.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, HTTPException, Request, Response
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut
from pydicom.pixels.utils import pixel_array

from dicomstation.database.headers import stored_syntax
from dicomstation.server.accept import parse_accept
from dicomstation.server.context import ServerContext
from dicomstation.server.lookup import instance_refs, one_instance
from dicomstation.server.pixels import NotDecodable, frame_count, pixel_keyword
from dicomstation.server.stored import read_stored

__all__ = ["parse_window", "render_file", "render_router", "to_uint8"]

THUMBNAIL = 128


def parse_window(text: str | None) -> tuple[float, float] | None:
    """Parse ``window=center,width[,function]`` (400,40 style) into (center, width)."""
    if not text:
        return None
    pieces = text.split(",")
    try:
        center, width = float(pieces[0]), float(pieces[1])
    except (ValueError, IndexError):
        raise HTTPException(400, f"invalid window {text!r}: use center,width") from None
    if not (math.isfinite(center) and math.isfinite(width)) or width <= 0:
        raise HTTPException(400, f"invalid window {text!r}: width must be a positive number")
    return center, width


def to_uint8(
    values: npt.NDArray[np.float64], window: tuple[float, float] | None
) -> npt.NDArray[np.uint8]:
    """Map values to 0-255 through a linear window, or min/max when no window is given."""
    if window is None:
        low, high = float(np.min(values)), float(np.max(values))
    else:
        low, high = window[0] - window[1] / 2, window[0] + window[1] / 2
    scale = 255.0 / (high - low) if high > low else 0.0
    return np.clip((values - low) * scale, 0, 255).astype(np.uint8)


def _frame_array(ds: Dataset, frame: int) -> npt.NDArray[Any]:
    count = frame_count(ds)
    if not 0 <= frame < count:
        raise HTTPException(404, f"frame {frame + 1} does not exist (the instance has {count})")
    try:
        return pixel_array(ds, index=frame if count > 1 else None)
    except Exception as exc:  # any decoder failure: refuse before the answer starts
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise NotDecodable(
            406,
            f"cannot decode instance {ds.SOPInstanceUID} ({stored_syntax(ds).name}) "
            f"to render it: {reason}",
        ) from None


def render_file(
    path: Path,
    frame: int = 0,
    window: tuple[float, float] | None = None,
    size: int | None = None,
    fmt: str = "JPEG",
    quality: int | None = None,
) -> bytes:
    """Render one frame of an instance file to JPEG/PNG bytes (grey or RGB).

    ``quality`` (1-100) is the JPEG quality (Pillow's default, 75, when None).
    """
    ds = read_stored(path)
    if pixel_keyword(ds) is None:
        raise HTTPException(404, f"instance {ds.SOPInstanceUID} has no pixel data")
    arr = _frame_array(ds, frame)
    if getattr(ds, "SamplesPerPixel", 1) == 1:
        values = apply_modality_lut(arr, ds).astype(np.float64)
        if window is None and "WindowCenter" in ds:
            values = np.asarray(apply_voi_lut(values, ds), dtype=np.float64)
        image = Image.fromarray(to_uint8(values, window))
        if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
            image = Image.eval(image, lambda v: 255 - v)
    else:
        image = Image.fromarray(arr if arr.dtype == np.uint8 else to_uint8(arr, None))
    if size:
        image.thumbnail((size, size))
    buffer = io.BytesIO()
    if fmt == "JPEG" and quality is not None:
        image.save(buffer, format=fmt, quality=quality)
    else:
        image.save(buffer, format=fmt)
    return buffer.getvalue()


def _format(request: Request) -> tuple[str, str]:
    for item in parse_accept(request.headers.get("accept"), "image/jpeg"):
        if item.media_type in ("image/jpeg", "image/*", "*/*"):
            return "JPEG", "image/jpeg"
        if item.media_type == "image/png":
            return "PNG", "image/png"
    raise HTTPException(406, "rendered images are available as image/jpeg or image/png")


def _viewport(request: Request, default: int | None) -> int | None:
    text = request.query_params.get("viewport")
    if not text:
        return default
    try:
        return max(1, min(4096, max(int(v) for v in text.split(",")[:2])))
    except ValueError:
        raise HTTPException(400, f"invalid viewport {text!r}: use width,height") from None


def _quality(request: Request) -> int | None:
    text = request.query_params.get("quality")
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 100:
        raise HTTPException(400, f"invalid quality {text!r}: use an integer from 1 to 100")
    return int(text)


def _render(
    ctx: ServerContext,
    request: Request,
    study: str,
    series: str | None,
    sop: str | None,
    frame: int,
    thumbnail: bool,
) -> Response:
    refs = instance_refs(ctx, study, series, sop)
    if sop is None:
        images = [r for r in refs if r.json.get("00280010", {}).get("Value")] or refs
        refs = images[len(images) // 2 :]  # the middle image represents a series/study
    fmt, media = _format(request)
    size = _viewport(request, THUMBNAIL if thumbnail else None)
    window = parse_window(request.query_params.get("window"))
    quality = _quality(request)
    path = ctx.db.instance_path(refs[0].sop_instance_uid)
    return Response(render_file(path, frame, window, size, fmt, quality), media_type=media)


def render_router(ctx: ServerContext) -> APIRouter:
    """Routes for rendered images and thumbnails."""
    router = APIRouter()
    base = "/studies/{study}/series/{series}/instances/{sop}"

    @router.get(base + "/rendered")
    def rendered(study: str, series: str, sop: str, request: Request) -> Response:
        return _render(ctx, request, study, series, sop, 0, False)

    @router.get(base + "/frames/{frame}/rendered")
    def rendered_frame(study: str, series: str, sop: str, frame: int, request: Request) -> Response:
        one_instance(ctx, study, series, sop)
        return _render(ctx, request, study, series, sop, frame - 1, False)

    @router.get("/studies/{study}/series/{series}/rendered")
    def series_rendered(study: str, series: str, request: Request) -> Response:
        return _render(ctx, request, study, series, None, 0, False)

    @router.get("/studies/{study}/rendered")
    def study_rendered(study: str, request: Request) -> Response:
        return _render(ctx, request, study, None, None, 0, False)

    @router.get(base + "/thumbnail")
    def instance_thumbnail(study: str, series: str, sop: str, request: Request) -> Response:
        return _render(ctx, request, study, series, sop, 0, True)

    @router.get(base + "/frames/{frame}/thumbnail")  # PS3.18 10.4.1: frame thumbnails too
    def frame_thumbnail(
        study: str, series: str, sop: str, frame: int, request: Request
    ) -> Response:
        one_instance(ctx, study, series, sop)
        return _render(ctx, request, study, series, sop, frame - 1, True)

    @router.get("/studies/{study}/series/{series}/thumbnail")
    def series_thumbnail(study: str, series: str, request: Request) -> Response:
        return _render(ctx, request, study, series, None, 0, True)

    @router.get("/studies/{study}/thumbnail")
    def study_thumbnail(study: str, request: Request) -> Response:
        return _render(ctx, request, study, None, None, 0, True)

    return router
