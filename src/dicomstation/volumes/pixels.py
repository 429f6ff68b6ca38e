"""Decode frames straight into one preallocated array, applying Rescale Slope/Intercept.

Decoding uses :mod:`pydicom.pixels` (its plugins handle JPEG baseline/lossless,
JPEG-LS, JPEG 2000 and RLE via pylibjpeg / pyjpegls). Files are decoded in a
thread pool; each worker writes its frames into its own slices of the output,
so memory stays at one output array plus one frame per worker.

Integer rescaling (slope 1, integer intercept: CT) decodes the stored values
in their own dtype and adds the intercept in place afterwards, widening only
when the actual values need it; any other slope gives float32.
"""

from __future__ import annotations

import os
import struct
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from dicomstation.errors import LoadError
from dicomstation.volumes.model import FrameHeader
from dicomstation.volumes.parallel import can_fork, fork_pool, worker_count

__all__ = [
    "Placement",
    "apply_integer_intercepts",
    "decode",
    "output_dtype",
    "pixel_value_span",
    "read_native",
    "stored_dtype",
]

_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN"}
_UINT16, _UINT32 = struct.Struct("<H"), struct.Struct("<I")
# Transfer syntax UIDs as text: pydicom (~0.3 s to import) is imported only for files the
# native reader below leaves to it (compressed, big endian, colour...).
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_DEFLATED = "1.2.840.10008.1.2.1.99"
_NATIVE = {_EXPLICIT_LE, "1.2.840.10008.1.2", "1.2.840.10008.1.2.2", _DEFLATED}
#: pydicom's default picks pylibjpeg for JPEG-LS, 4x slower than pyjpegls (CharLS).
_PREFERRED_PLUGIN = {"1.2.840.10008.1.2.4.80": "pyjpegls", "1.2.840.10008.1.2.4.81": "pyjpegls"}


@dataclass(frozen=True)
class Placement:
    """Where one frame goes: ``out[index]``."""

    frame: FrameHeader
    index: tuple[int, ...]


def stored_dtype(frame: FrameHeader) -> np.dtype[np.generic] | None:
    """The little-endian dtype of ``frame``'s stored values (uint8 for 1-bit), or None."""
    if frame.bits_allocated == 1:  # bit-packed (binary SEG): unpacked to 0/1 bytes
        return np.dtype(np.uint8)
    if frame.bits_allocated not in (8, 16, 32):
        return None
    return np.dtype(f"<{'i' if frame.pixel_representation else 'u'}{frame.bits_allocated // 8}")


def output_dtype(frames: Sequence[FrameHeader]) -> tuple[np.dtype[np.generic], bool]:
    """Dtype to decode into, and whether the values are rescaled.

    Colour: uint8/uint16. Slope 1 with integer intercepts: the stored dtype
    (the intercept is added by :func:`apply_integer_intercepts`). Otherwise
    float32, rescaled while decoding.
    """
    f0 = frames[0]
    rescaled = any(f.rescale_slope != 1.0 or f.rescale_intercept != 0.0 for f in frames)
    if f0.samples_per_pixel > 1:  # colour: Rescale Slope/Intercept do not apply
        return np.dtype(np.uint8 if f0.bits_allocated <= 8 else np.uint16), False
    stored = {stored_dtype(f) for f in frames}
    integer = all(
        f.rescale_slope == 1.0 and float(f.rescale_intercept).is_integer() for f in frames
    )
    if integer and len(stored) == 1 and None not in stored:
        dtype = stored.pop()
        assert dtype is not None
        return dtype, rescaled
    return np.dtype(np.float32), rescaled


def decode(
    shape: tuple[int, ...], dtype: np.dtype[np.generic], placements: Sequence[Placement]
) -> npt.NDArray[np.generic]:
    """Allocate the output once and decode every placed frame into it.

    Uncompressed files are read in a thread pool (the reads release the GIL).
    Compressed series of 16 or more files are decoded by forked worker
    processes writing into a shared anonymous mapping, because the JPEG-LS and
    JPEG 2000 decoders hold the GIL; this is only done when no other thread
    is running (forking a threaded process is unsafe).

    Raises
    ------
    LoadError
        Naming every file that could not be decoded (corrupt, truncated,
        unsupported transfer syntax, wrong size).
    """
    by_file: dict[Path, list[Placement]] = defaultdict(list)
    for placement in placements:
        by_file[placement.frame.source.path].append(placement)
    workers = worker_count()
    if _compressed(placements) or any(p.frame.pixel_offset is None for p in placements):
        import pydicom.pixels.utils  # noqa: F401  (once, before the workers fork or start)
    if len(by_file) >= 16 and _compressed(placements) and _can_fork():
        out = _allocate(shape, dtype, shared=True)
        items = list(by_file.items())
        chunks = [items[i :: workers * 2] for i in range(workers * 2)]
        with fork_pool(_init_worker, (out,)) as pool:
            errors = [e for errs in pool.map(_decode_chunk, chunks) for e in errs]
    else:
        from concurrent.futures import ThreadPoolExecutor  # (with logging) when decoding

        out = _allocate(shape, dtype, shared=False)
        with ThreadPoolExecutor(max_workers=workers) as threads:
            errors = [
                e for e in threads.map(lambda it: _decode_file(out, *it), by_file.items()) if e
            ]
    if errors:
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise LoadError(f"cannot decode {len(errors)} file(s): {'; '.join(errors[:5])}{more}")
    return out


def _allocate(
    shape: tuple[int, ...], dtype: np.dtype[np.generic], *, shared: bool
) -> npt.NDArray[np.generic]:
    """The output array; on a shared anonymous mapping when forked workers fill it.

    (Private outputs use ``np.empty``: NumPy already asks for transparent huge
    pages on large allocations, which keeps first-touch page faults cheap.)
    """
    if not shared:
        return np.empty(shape, dtype=dtype)
    import mmap

    count = int(np.prod(shape))
    buffer = mmap.mmap(-1, max(count * dtype.itemsize, 1), flags=mmap.MAP_SHARED)
    return np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape)


def _compressed(placements: Sequence[Placement]) -> bool:
    return any(p.frame.transfer_syntax_uid not in _NATIVE for p in placements)


def _can_fork() -> bool:
    return can_fork()


_worker_out: npt.NDArray[np.generic] | None = None  # set only inside forked workers


def _init_worker(out: npt.NDArray[np.generic]) -> None:
    """Pool initializer: inherited (not pickled) with fork; keeps the shared output."""
    global _worker_out
    _worker_out = out


def _decode_chunk(items: list[tuple[Path, list[Placement]]]) -> list[str]:
    """Worker: decode some files into the shared output; return error messages."""
    assert _worker_out is not None
    return [e for e in (_decode_file(_worker_out, path, placed) for path, placed in items) if e]


def _plugin(syntax: str) -> str:
    """Preferred decoding plugin for a transfer syntax ('' lets pydicom choose)."""
    from pydicom.pixels.decoders.base import get_decoder

    name = _PREFERRED_PLUGIN.get(syntax, "")
    try:
        return name if name in get_decoder(syntax).available_plugins else ""
    except NotImplementedError:
        return ""


def _decode_file(out: npt.NDArray[np.generic], path: Path, placed: list[Placement]) -> str:
    """Decode one file's frames into ``out``; return an error message or ''."""
    try:
        first = placed[0]
        if first.frame.transfer_syntax_uid == _DEFLATED:
            _store_inflated(out, path, placed)
            return ""
        if first.frame.mosaic_tile is not None:
            from pydicom.pixels.utils import pixel_array

            _store_tiles(
                out,
                placed,
                pixel_array(path, decoding_plugin=_plugin(first.frame.transfer_syntax_uid)),
            )
            return ""
        if first.frame.number_of_frames == 1 and first.frame.source.frame_number is None:
            if not read_native(path, first.frame, out[first.index]):
                from pydicom.pixels.utils import pixel_array

                plugin = _plugin(first.frame.transfer_syntax_uid)
                _store(out, first, pixel_array(path, decoding_plugin=plugin))
            return ""
        by_index = {(p.frame.source.frame_number or 1) - 1: p for p in placed}
        indices = sorted(by_index)
        from pydicom.pixels.utils import iter_pixels

        plugin = _plugin(first.frame.transfer_syntax_uid)
        frames = iter_pixels(path, indices=indices, decoding_plugin=plugin)
        for index, frame in zip(indices, frames, strict=True):
            _store(out, by_index[index], frame)
    except LoadError as exc:
        return f"{path}: {exc}"
    except Exception as exc:
        return f"{path}: {type(exc).__name__}: {exc}"
    return ""


def _store_inflated(out: npt.NDArray[np.generic], path: Path, placed: list[Placement]) -> None:
    """Deflated files: the whole dataset is one zlib stream, so read it with pydicom first."""
    from pydicom import dcmread

    pixels = np.asarray(dcmread(path).pixel_array)
    first = placed[0].frame
    if first.mosaic_tile is not None:
        _store_tiles(out, placed, pixels)
        return
    if first.number_of_frames == 1 and first.source.frame_number is None:
        _store(out, placed[0], pixels)
        return
    frames = pixels.reshape(first.number_of_frames, *pixels.shape[-(pixels.ndim - 1) :])
    if first.number_of_frames == 1:
        frames = pixels[np.newaxis]
    for placement in placed:
        _store(out, placement, frames[(placement.frame.source.frame_number or 1) - 1])


def read_native(path: Path, frame: FrameHeader, dest: npt.NDArray[np.generic]) -> bool:
    """Read uncompressed little-endian pixels straight into ``dest``; False if not applicable.

    Hand-written instead of ``pydicom.pixels.pixel_array`` for speed and memory:
    it reads the bytes into the output slice (no second header parse); a float
    output (slope != 1) is read into one frame of stored values and rescaled
    into place. Cases needing pydicom's processing (signed values with unused
    high bits, colour, odd bit depths) return False.
    """
    stored = stored_dtype(frame)
    if (
        frame.pixel_offset is None
        or frame.samples_per_pixel != 1
        or stored is None
        or (stored != dest.dtype and dest.dtype.kind != "f")
        or frame.bits_allocated == 1
        or (frame.pixel_representation and frame.bits_stored != frame.bits_allocated)
        or not dest.flags.c_contiguous
    ):
        return False
    target = dest if stored == dest.dtype else np.empty(dest.shape, dtype=stored)
    with path.open("rb") as fh:
        start, length = pixel_value_span(fh.fileno(), frame)
        if length == 0xFFFFFFFF or length < target.nbytes:
            return False
        fh.seek(start)
        got = fh.readinto(memoryview(target).cast("B"))  # type: ignore[arg-type]
    if got != target.nbytes:
        raise LoadError(f"truncated pixel data ({got} of {target.nbytes} bytes)")
    if target is not dest:
        np.multiply(target, frame.rescale_slope, out=dest, casting="unsafe")
        if frame.rescale_intercept != 0.0:
            np.add(dest, frame.rescale_intercept, out=dest, casting="unsafe")
    return True


def pixel_value_span(fd: int, frame: FrameHeader) -> tuple[int, int]:
    """``(offset, length)`` of the value of the native Pixel Data element of ``frame``.

    ``frame.pixel_offset`` is where the element starts in the open file ``fd``
    (explicit or implicit VR little endian). A length of ``0xFFFFFFFF`` means
    undefined (encapsulated).

    Raises
    ------
    LoadError
        When the file ends inside the element's header.
    """
    if frame.pixel_offset is None:
        raise LoadError("no native Pixel Data offset")
    start = frame.pixel_offset + 4
    head = os.pread(fd, 8, start)
    if len(head) < 8:
        raise LoadError("truncated pixel data element")
    if frame.transfer_syntax_uid == _EXPLICIT_LE:
        if head[:2] in _LONG_VRS:
            return start + 8, int(_UINT32.unpack_from(head, 4)[0])
        return start + 4, int(_UINT16.unpack_from(head, 2)[0])
    return start + 4, int(_UINT32.unpack_from(head, 0)[0])


def _store_tiles(
    out: npt.NDArray[np.generic], placed: list[Placement], mosaic: npt.NDArray[np.generic]
) -> None:
    """Cut a decoded Siemens mosaic into its tiles (row-major) and store each."""
    for placement in placed:
        f = placement.frame
        tile = f.mosaic_tile or 0
        r0, c0 = (tile // f.mosaic_grid) * f.rows, (tile % f.mosaic_grid) * f.columns
        _store(out, placement, mosaic[r0 : r0 + f.rows, c0 : c0 + f.columns])


def _store(
    out: npt.NDArray[np.generic], placement: Placement, frame: npt.NDArray[np.generic]
) -> None:
    """Write one decoded frame into its slice (rescaled when the output is float)."""
    dest = out[placement.index]
    if frame.shape != dest.shape:
        raise LoadError(f"frame shape {frame.shape} differs from the volume's {dest.shape}")
    if dest.dtype.kind != "f":
        np.copyto(dest, frame, casting="unsafe")
        return
    slope, intercept = placement.frame.rescale_slope, placement.frame.rescale_intercept
    np.multiply(frame, slope, out=dest, casting="unsafe")
    if intercept != 0.0:
        dest += dest.dtype.type(intercept)


def apply_integer_intercepts(
    out: npt.NDArray[np.generic], placements: Sequence[Placement]
) -> npt.NDArray[np.generic]:
    """Add integer intercepts to an integer array, in place unless values need a wider dtype."""
    if out.dtype.kind == "f" or placements[0].frame.samples_per_pixel > 1:
        return out  # float: rescaled while decoding; colour: never rescaled
    shifts = {p.index: int(p.frame.rescale_intercept) for p in placements}
    if not any(shifts.values()):
        return out
    low = min(int(out[i].min()) + c for i, c in shifts.items())
    high = max(int(out[i].max()) + c for i, c in shifts.items())
    target = next(
        np.dtype(t)
        for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64)
        if np.iinfo(t).min <= low
        and high <= np.iinfo(t).max
        and np.dtype(t).itemsize >= out.dtype.itemsize
    )
    if target.itemsize == out.dtype.itemsize:
        # Same width: the stored values are in range of the target, so reinterpret in place.
        out = out.view(target) if _fits(out, target) else out.astype(target)
    else:
        out = out.astype(target)
    for index, shift in shifts.items():
        if shift:
            out[index] += target.type(shift)
    return out


def _fits(out: npt.NDArray[np.generic], target: np.dtype[np.generic]) -> bool:
    info = np.iinfo(target)  # type: ignore[type-var]
    return bool(info.min <= int(out.min()) and int(out.max()) <= info.max)
