"""Decoding the raw index values the scanner finds, as pydicom's character-set handling does.

Split from :mod:`scanner` (which walks the bytes): a value without ESC in a
character set that reads ASCII as ASCII decodes without pydicom; any other goes
through ``pydicom.charset.decode_bytes``. pydicom is imported on the first
value that needs it, not with this module.
"""

from __future__ import annotations

import functools
import struct
from typing import Any

__all__ = ["decode_repeated", "decode_value", "encodings_of"]


@functools.lru_cache(maxsize=64)
def _ascii_safe(encoding: str) -> bool:
    """True if ``encoding`` (one of pydicom's for a DICOM character set) decodes ASCII as ASCII.

    For those, an ASCII value (without ESC) decodes to the same string as through
    pydicom's ``decode_bytes`` (which decodes a value without ESC with the first
    encoding), so most values skip pydicom. Checked per encoding met, not for
    every encoding pydicom maps at once: that imported some 20 codec modules
    (CJK included, ~30 ms) on the first scan of every process.
    """
    sample = bytes(b for b in range(0x80) if b != 0x1B)
    return sample.decode(encoding) == sample.decode("ascii")


@functools.lru_cache(maxsize=64)
def encodings_of(charset: bytes) -> tuple[str, ...]:
    """pydicom's Python encodings for a raw SpecificCharacterSet value (a series shares one)."""
    from pydicom import charset as pydicom_charset  # imported on the first scan only

    text = charset.rstrip(b"\x00 ").decode("ascii", "replace")
    if not text:
        return (pydicom_charset.default_encoding,)
    return tuple(pydicom_charset.convert_encodings(text.split("\\")))


@functools.lru_cache(maxsize=1024)
def _decode_text(text: bytes, encodings: tuple[str, ...], person: bool) -> str:
    """pydicom's decoding of a non-ASCII value (cached: a series repeats its names)."""
    from pydicom.charset import decode_bytes

    return decode_bytes(text, list(encodings), {0x5E, 0x3D} if person else set())


def decode_value(raw: bytes, kind: str, encodings: tuple[str, ...]) -> Any:
    """The value of ``raw``, as pydicom's character-set handling decodes it."""
    if kind == "us":
        return struct.unpack_from("<H", raw)[0] if len(raw) >= 2 else None
    text = raw.rstrip(b"\x00 ").lstrip(b" ")
    if kind == "uid":
        return text.decode("ascii", "replace")
    if text.isascii() and b"\x1b" not in text and _ascii_safe(encodings[0]):
        decoded = text.decode("ascii")
    else:
        decoded = _decode_text(text, encodings, kind == "pn")
    if kind == "is":
        try:
            return int(float(decoded)) if decoded.strip() else None
        except ValueError:
            return None
    return decoded.rstrip("=") if kind == "pn" else decoded  # PN: every group (A=I=P)


#: :func:`decode_value` of values that repeat from file to file (bounded; the values are immutable)
decode_repeated = functools.lru_cache(maxsize=4096)(decode_value)
