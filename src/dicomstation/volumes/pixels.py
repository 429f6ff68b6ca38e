"""Decode frames straight into one preallocated array, applying Rescale Slope/Intercept.

Decoding uses :mod:`pydicom.pixels` (its plugins handle JPEG baseline/lossless,
JPEG-LS, JPEG 2000 and RLE via pylibjpeg / pyjpegls). Files are decoded in a
thread pool; each worker writes its frames into its own slices of the output,
so memory stays at one output array plus one frame per worker.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.pixels.utils import iter_pixels, pixel_array

from dicomstation.errors import LoadError
from dicomstation.volumes.model import FrameHeader

__all__ = ["Placement", "decode_into", "output_dtype"]


@dataclass(frozen=True)
class Placement:
    """Where one frame goes: ``out[index]``."""

    frame: FrameHeader
    index: tuple[int, ...]


def output_dtype(frames: Sequence[FrameHeader]) -> tuple[np.dtype[np.generic], bool]:
    """Smallest dtype holding every rescaled value; and whether rescaling changes values.

    Integer when every slope is 1 and every intercept an integer (as Slicer
    does), float32 otherwise; uint8 for 8-bit colour.
    """
    f0 = frames[0]
    rescaled = any(f.rescale_slope != 1.0 or f.rescale_intercept != 0.0 for f in frames)
    if f0.samples_per_pixel > 1:
        return np.dtype(np.uint8 if f0.bits_allocated <= 8 else np.uint16), False
    if any(f.rescale_slope != 1.0 or not float(f.rescale_intercept).is_integer() for f in frames):
        return np.dtype(np.float32), rescaled
    low, high = 0, 0
    for f in frames:
        bits = min(f.bits_stored, f.bits_allocated)
        lo, hi = (
            (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
            if f.pixel_representation
            else (0, 2**bits - 1)
        )
        low = min(low, lo + int(f.rescale_intercept))
        high = max(high, hi + int(f.rescale_intercept))
    for dtype in (np.uint8, np.int16, np.uint16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return np.dtype(dtype), rescaled
    return np.dtype(np.float64), rescaled


def decode_into(
    out: npt.NDArray[np.generic], placements: Sequence[Placement], max_workers: int | None = None
) -> None:
    """Decode every placed frame into ``out``.

    Raises
    ------
    LoadError
        Naming every file that could not be decoded (corrupt, truncated,
        unsupported transfer syntax, wrong size).
    """
    by_file: dict[Path, list[Placement]] = defaultdict(list)
    for placement in placements:
        by_file[placement.frame.source.path].append(placement)
    workers = max_workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        errors = [e for e in pool.map(lambda item: _decode_file(out, *item), by_file.items()) if e]
    if errors:
        listed = "; ".join(errors[:5]) + (
            f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        )
        raise LoadError(f"cannot decode {len(errors)} file(s): {listed}")


def _decode_file(out: npt.NDArray[np.generic], path: Path, placed: list[Placement]) -> str:
    """Decode one file's frames into ``out``; return an error message or ''."""
    try:
        if placed[0].frame.number_of_frames == 1 and placed[0].frame.source.frame_number is None:
            _store(out, placed[0], pixel_array(path))
            return ""
        by_index = {(p.frame.source.frame_number or 1) - 1: p for p in placed}
        indices = sorted(by_index)
        for index, frame in zip(indices, iter_pixels(path, indices=indices), strict=True):
            _store(out, by_index[index], frame)
    except LoadError as exc:
        return f"{path}: {exc}"
    except Exception as exc:
        return f"{path}: {type(exc).__name__}: {exc}"
    return ""


def _store(
    out: npt.NDArray[np.generic], placement: Placement, frame: npt.NDArray[np.generic]
) -> None:
    """Write one decoded frame into its slice, rescaled."""
    dest = out[placement.index]
    if frame.shape != dest.shape:
        raise LoadError(f"frame shape {frame.shape} differs from the volume's {dest.shape}")
    slope, intercept = placement.frame.rescale_slope, placement.frame.rescale_intercept
    if slope == 1.0:
        np.copyto(dest, frame, casting="unsafe")
    else:
        np.multiply(frame, slope, out=dest, casting="unsafe")
    if intercept != 0.0:
        dest += dest.dtype.type(intercept)
