"""Frames of a stored instance as bytes: as stored (encapsulated) or native little endian.

Native frames are cut by bit position, not by ``len(PixelData) // frames``: 1-bit
frames (SEG) whose rows x columns is not a multiple of 8 start mid-byte and are
repacked to start at bit 0 (PS3.5 8.1.1); big-endian data is swapped to little
endian. Encapsulated frames a client wants native are decoded by pydicom (colour
as pydicom gives it: RGB, interleaved).

Every request decides before the first byte is sent: :func:`prepare` checks the
pixel data's length and decodes up to :data:`EAGER_BYTES` of frames at once; a
decoder that cannot handle the instance raises :class:`NotDecodable` (406).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from fastapi import HTTPException
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels.utils import pixel_array

from dicomstation.database.headers import stored_syntax

__all__ = [
    "EAGER_BYTES",
    "NotDecodable",
    "frame_count",
    "frame_iter",
    "native_frame",
    "native_value",
    "pixel_keyword",
    "swap_to_little",
]

EAGER_BYTES = 256 << 20  # decoded frames held before the answer starts; later ones stream
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


class NotDecodable(HTTPException):
    """The instance's pixel data cannot be given in the representation asked for (406)."""


def pixel_keyword(ds: Dataset) -> str | None:
    """The keyword of the data set's pixel data element (None without pixel data)."""
    return next((k for k in _PIXEL_KEYWORDS if k in ds), None)


def frame_count(ds: Dataset) -> int:
    """Number of frames (1 when NumberOfFrames is absent or empty)."""
    try:
        return max(1, int(getattr(ds, "NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def swap_to_little(data: bytes, word: int) -> bytes:
    """Big-endian words of ``word`` bytes (2, 4, 8) as little endian; ``word`` 1: unchanged."""
    if word <= 1:
        return data
    usable = len(data) - len(data) % word
    swapped = np.frombuffer(data, dtype=f">u{word}", count=usable // word).astype(f"<u{word}")
    return swapped.tobytes() + data[usable:]


@dataclass(frozen=True)
class _Layout:
    bits: int  # bits allocated per sample
    frame_bits: int  # bits per frame


def _layout(ds: Dataset, keyword: str) -> _Layout:
    bits = {"FloatPixelData": 32, "DoubleFloatPixelData": 64}.get(keyword)
    bits = bits or int(ds.BitsAllocated)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    pixels = int(ds.Rows) * int(ds.Columns)
    if str(getattr(ds, "PhotometricInterpretation", "")) == "YBR_FULL_422":
        return _Layout(bits, pixels * 2 * bits)  # two samples per pixel stored
    return _Layout(bits, pixels * samples * bits)


def native_frame(ds: Dataset, index: int) -> bytes:
    """Frame ``index`` (0-based) of native pixel data, little endian, 1-bit frames repacked.

    Raises
    ------
    fastapi.HTTPException
        500 when the pixel data is shorter than its attributes say.
    """
    keyword = pixel_keyword(ds) or "PixelData"
    data: bytes = ds[keyword].value
    layout = _layout(ds, keyword)
    start, stop = index * layout.frame_bits, (index + 1) * layout.frame_bits
    if stop > len(data) * 8:
        raise HTTPException(
            500, f"instance {ds.SOPInstanceUID}: pixel data is shorter than its attributes say"
        )
    if layout.bits == 1:
        if start % 8 == 0:
            return bytes(data[start // 8 : (stop + 7) // 8])
        bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")[start:stop]
        return np.packbits(bits, bitorder="little").tobytes()
    frame = bytes(data[start // 8 : stop // 8])
    if not stored_syntax(ds).is_little_endian:
        frame = swap_to_little(frame, layout.bits // 8)
    return frame


def native_value(ds: Dataset) -> bytes:
    """The whole native pixel data value, little endian."""
    keyword = pixel_keyword(ds) or "PixelData"
    data: bytes = ds[keyword].value
    if stored_syntax(ds).is_little_endian:
        return data
    return swap_to_little(data, _layout(ds, keyword).bits // 8)


def _decoded(ds: Dataset, index: int) -> bytes:
    try:
        array = pixel_array(ds, index=index)
    except Exception as exc:  # any decoder failure: refuse, naming the instance
        syntax = stored_syntax(ds)
        raise NotDecodable(
            406,
            f"cannot decode frame {index + 1} of instance {ds.SOPInstanceUID} "
            f"({syntax.name}): {str(exc).splitlines()[0][:160]}; ask for the frames "
            "as stored (transfer-syntax=*)",
        ) from None
    return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def _one(ds: Dataset, index: int, encoded: bool) -> bytes:
    syntax = stored_syntax(ds)
    if not syntax.is_compressed:
        return native_frame(ds, index)
    if encoded:
        return get_frame(ds.PixelData, index, number_of_frames=frame_count(ds))
    return _decoded(ds, index)


def frame_iter(ds: Dataset, indexes: list[int], encoded: bool) -> Iterator[bytes]:
    """The frames ``indexes`` (0-based): the first ones computed now, the rest lazily.

    Frames are computed before returning until :data:`EAGER_BYTES` are held, so a
    failure (a decoder that cannot handle the instance, short pixel data) raises
    here, before any answer is started.
    """
    ready: list[bytes] = []
    held = 0
    for position, index in enumerate(indexes):
        if held >= EAGER_BYTES:
            return _chain(ready, (_one(ds, i, encoded) for i in indexes[position:]))
        ready.append(_one(ds, index, encoded))
        held += len(ready[-1])
    return iter(ready)


def _chain(first: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from first
    yield from rest
