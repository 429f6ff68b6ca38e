"""Whether a data set's bytes run out inside an element: truncation told without warnings.

pydicom reads a file that was cut short without raising: an element header cut at the
end ends the data set silently, and a sequence cut inside its items is reported only by
a ``UserWarning`` ("End of file reached before delimiter"). Catching that warning needs
``warnings.catch_warnings``, which swaps the warnings module's process-wide filters and
``showwarning`` and is not thread-safe, while the scanner runs on receiving and
importing threads (a warning of any other thread was recorded as ours and never shown).
So for the files it hands to pydicom (big endian, deflated, no file meta, unusual
structures) the scanner asks :func:`extent` instead: a walk of the element lengths, in
explicit or implicit VR, little or big endian (a deflated data set is inflated first),
undefined lengths followed through their items and delimiters (a UN sequence's items in
implicit VR little endian, PS3.5 6.2.2). It says whether the bytes end exactly after the
last element, run out inside one, or hold something it cannot read as elements (no
verdict: pydicom's reading stands).
"""

from __future__ import annotations

import mmap
import struct
import zlib
from enum import Enum

__all__ = [
    "BIG_ENDIAN",
    "DEFLATED",
    "IMPLICIT",
    "ITEM",
    "ITEM_END",
    "LONG_VRS",
    "MAX_INFLATED",
    "SEQ_END",
    "UNDEFINED",
    "Extent",
    "extent",
]

#: Explicit VRs with a 4-byte length (PS3.5 7.1.2); shared with the scanner's fast walk.
LONG_VRS = frozenset(
    {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UT", b"UN", b"UC", b"UR", b"SV", b"UV"}
)
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD  # as group << 16 | element
UNDEFINED = 0xFFFFFFFF  # an undefined length
IMPLICIT, BIG_ENDIAN, DEFLATED = (
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
)
_MAX_DEPTH = 64  # nested sequences deeper than this are not read (a hostile file)

Buffer = bytes | bytearray | memoryview | mmap.mmap


#: A deflated data set that inflates past this many bytes is refused (a "zip bomb": a
#: few kilobytes from the network would otherwise take gigabytes here and in pydicom).
MAX_INFLATED = 1 << 30


class Extent(Enum):
    """What :func:`extent` found."""

    COMPLETE = "complete"
    TRUNCATED = "truncated"
    UNKNOWN = "unknown"
    TOO_LARGE = "too large"  # deflated, inflating past MAX_INFLATED


class _TruncatedError(Exception):
    pass


class _UnreadableError(Exception):
    pass


class _Walker:
    """Element lengths of one byte order and VR encoding, followed from an offset."""

    def __init__(self, data: Buffer, little: bool, implicit: bool) -> None:
        order = "<" if little else ">"
        self.data = data
        self.tag = struct.Struct(order + "HH")
        self.u16 = struct.Struct(order + "H")
        self.u32 = struct.Struct(order + "I")
        self.implicit = implicit

    def header(self, pos: int, end: int) -> tuple[int, bytes, int, int]:
        """Tag, VR (empty in implicit VR and for item tags), length, value offset."""
        if pos + 8 > end:
            raise _TruncatedError
        group, element = self.tag.unpack_from(self.data, pos)
        tag = group << 16 | element
        if group == 0xFFFE or self.implicit:  # item tags have no VR in any encoding
            return tag, b"", self.u32.unpack_from(self.data, pos + 4)[0], pos + 8
        vr = bytes(self.data[pos + 4 : pos + 6])
        if vr in LONG_VRS:
            if pos + 12 > end:
                raise _TruncatedError
            return tag, vr, self.u32.unpack_from(self.data, pos + 8)[0], pos + 12
        if not (vr.isalpha() and vr.isupper()):
            raise _UnreadableError
        return tag, vr, self.u16.unpack_from(self.data, pos + 6)[0], pos + 8

    def elements(self, pos: int, end: int, stop: int | None, depth: int = 0) -> int:
        """Walk to ``end`` (or to the item delimiter ``stop``); the offset after."""
        if depth > _MAX_DEPTH:
            raise _UnreadableError
        while pos < end:
            tag, vr, length, pos = self.header(pos, end)
            if tag == stop:
                return pos
            if tag >> 16 == 0xFFFE:  # an item tag out of place
                raise _UnreadableError
            if length != UNDEFINED:
                pos += length
                if pos > end:
                    raise _TruncatedError
            elif vr == b"UN":  # its items are in implicit VR little endian
                inner = _Walker(self.data, little=True, implicit=True)
                pos = inner.items(pos, end, depth + 1)
            else:
                pos = self.items(pos, end, depth + 1)
        if stop is not None:
            raise _TruncatedError
        return pos

    def items(self, pos: int, end: int, depth: int) -> int:
        """Walk the items of an undefined length (a sequence, encapsulated pixel data)."""
        while True:
            tag, _vr, length, pos = self.header(pos, end)
            if tag == SEQ_END:
                return pos
            if tag != ITEM:
                raise _UnreadableError
            if length == UNDEFINED:
                pos = self.elements(pos, end, ITEM_END, depth)
            else:
                pos += length
                if pos > end:
                    raise _TruncatedError


def _looks_explicit(data: Buffer) -> bool:
    vr = bytes(data[4:6])
    return len(vr) == 2 and vr.isalpha() and vr.isupper()


def _looks_little(data: Buffer) -> bool:
    """The first group number is the smaller one read little endian (0008 vs 0800)."""
    if len(data) < 2:
        return True
    little, big = struct.unpack("<H", data[:2])[0], struct.unpack(">H", data[:2])[0]
    return bool(little <= big)


def extent(data: Buffer, start: int, syntax: str | None) -> Extent:
    """Whether ``data[start:]``, a data set in transfer syntax ``syntax``, is complete.

    ``syntax`` None: a data set without file meta (explicit VR when its first element
    has a VR, big endian when its first group number reads smaller so, as pydicom
    guesses). A deflated data set whose stream does not end is truncated; one that
    inflates past :data:`MAX_INFLATED` bytes is :attr:`Extent.TOO_LARGE`.
    """
    with memoryview(data) as view, view[start:] as rest:  # no copy of a mapped file
        return _verdict(rest, syntax)


def _verdict(body: Buffer, syntax: str | None) -> Extent:
    if syntax == DEFLATED:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, MAX_INFLATED + 1)
        except zlib.error:
            return Extent.UNKNOWN
        if len(body) > MAX_INFLATED:
            return Extent.TOO_LARGE
        if not inflater.eof:
            return Extent.TRUNCATED
    if syntax:
        implicit, little = syntax == IMPLICIT, syntax != BIG_ENDIAN
    else:
        implicit, little = not _looks_explicit(body), _looks_little(body)
    walker = _Walker(body, little=little, implicit=implicit)
    try:
        walker.elements(0, len(body), None)
    except _TruncatedError:
        return Extent.TRUNCATED
    except (_UnreadableError, struct.error, RecursionError):
        return Extent.UNKNOWN
    return Extent.COMPLETE
