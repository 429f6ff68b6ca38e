"""Encode a new DICOM file: the bytes ``Dataset.save_as(enforce_file_format=True)`` writes.

pydicom's writer makes a buffer object and converts the character set for every element
and re-runs its ambiguous-VR correction for every sequence item at every depth: writing
the SEG and SR of a 64-slice study (~10,000 elements in ~3,600 items) took ~100 ms CPU,
more than building the SR. :func:`encode_file` writes the data set of an Explicit VR
Little Endian file itself, element by element with the rules of pydicom 3.0's
``write_dataset`` / ``write_data_element`` and its per-VR writers, and lets pydicom
write the preamble and File Meta Information (``write_file_meta_info``, as ``dcmwrite``
does, on a copy of ``file_meta``). Anything those rules do not cover here (another
transfer syntax, an ambiguous VR, a buffered or undefined-length value other than a
sequence, a value too long for its VR's length field, values of types pydicom would
convert in some other way, text the character set could encode differently, an
exception of any kind) makes the whole file go through ``save_as``: the bytes are
pydicom's in every case (tests/export/test_encode.py compares them on every export
kind and on files of ../shared/data). Nothing global is changed. The rules are pydicom
3.0's (checked on 3.0.2): on another version (:data:`AVAILABLE` False) every file goes
through ``save_as``. docs/upstream/pydicom.md has the upstream proposal.
"""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Callable
from copy import deepcopy
from datetime import date, datetime, time
from io import BufferedIOBase
from typing import Any

import pydicom
from pydicom.charset import convert_encodings, encode_string
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, PersonName

__all__ = ["AVAILABLE", "encode_file"]

#: The rules mirrored are pydicom 3.0's writer's (checked on 3.0.2); another version
#: writes every file through pydicom itself.
AVAILABLE = pydicom.__version__.startswith("3.0.")


class _UnsupportedError(Exception):
    """Not handled here: pydicom writes the file."""


_LONG = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)
_HEAD_SHORT = struct.Struct("<HH2sH")
_HEAD_LONG = struct.Struct("<HH2sHI")
_UINT32 = struct.Struct("<I")
_ITEM = b"\xfe\xff\x00\xe0"
_ITEM_END = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
_SEQUENCE_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_UNDEFINED = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010
_NUMBERS = {"FD": "d", "FL": "f", "SL": "l", "SS": "h", "SV": "q", "UL": "L", "US": "H", "UV": "Q"}
_STRINGS = frozenset({"AE", "AS", "CS", "UR"})
_TEXTS = frozenset({"LO", "LT", "SH", "ST", "UC", "UT"})
_BYTES = frozenset({"OB", "OD", "OF", "OL", "OW", "OV"})
#: Python encodings that write ASCII text as ASCII bytes (others go through pydicom).
_ASCII_SAFE = frozenset({"iso8859", "latin_1", "UTF8", "utf_8"})


def encode_file(ds: Dataset) -> bytes:
    """The bytes of ``ds`` as ``ds.save_as(buffer, enforce_file_format=True)`` writes them.

    Raises what ``save_as`` raises for a data set it cannot write.
    """
    if AVAILABLE:
        try:
            return _encode(ds)
        except Exception:  # any doubt: pydicom writes it (and raises its own error)
            pass
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _encode(ds: Dataset) -> bytes:
    meta = getattr(ds, "file_meta", None)
    if not isinstance(meta, FileMetaDataset) or meta.get("TransferSyntaxUID") != (
        ExplicitVRLittleEndian
    ):
        raise _UnsupportedError("transfer syntax")
    if any(tag >> 16 in (0, 2) for tag in ds._dict):
        raise _UnsupportedError("command or file meta elements in the data set")
    preamble = getattr(ds, "preamble", None) or b"\x00" * 128
    if len(preamble) != 128:
        raise _UnsupportedError("preamble")
    head = DicomBytesIO()
    head.is_implicit_VR, head.is_little_endian = False, True
    head.write(preamble)
    head.write(b"DICM")
    write_file_meta_info(head, _file_meta(meta, ds), enforce_standard=True)
    if "PixelData" in ds:
        ds["PixelData"].is_undefined_length = False  # what dcmwrite sets (not compressed)
    out = bytearray(head.getvalue())
    _dataset(out, ds, "iso8859")
    return bytes(out)


def _file_meta(meta: FileMetaDataset, ds: Dataset) -> FileMetaDataset:
    """dcmwrite's copy of the file meta, with the SOP Class and Instance of ``ds``."""
    meta = deepcopy(meta)
    for meta_key, key in (
        ("MediaStorageSOPClassUID", "SOPClassUID"),
        ("MediaStorageSOPInstanceUID", "SOPInstanceUID"),
    ):
        current, own = meta.get(meta_key, None), ds.get(key, None)
        if current is None or (own and own != current):
            setattr(meta, meta_key, own)
    return meta


def _dataset(out: bytearray, ds: Dataset, parent: Any) -> None:
    # pydicom converts raw elements when the encoding or character set changes, else
    # writes them as read; a converted element is the same object from either accessor
    convert = (
        ds.original_encoding != (False, True) or ds.original_character_set != ds._character_set
    )
    get: Callable[[Any], Any] = ds.__getitem__ if convert else ds.get_item
    elements = ds._dict
    charset = ds[0x00080005].value if 0x00080005 in elements else parent
    encodings, ascii_safe = _encodings(tuple(charset) if _multi(charset) else charset)
    for tag in sorted(elements):
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue  # group lengths are not written
        elem = elements[tag]
        if isinstance(elem, RawDataElement):
            elem = get(tag)
        if convert and tag == _PIXEL_DATA and elem.VR == "OB or OW":
            _pixel_data_vr(ds, elem)
        if isinstance(elem, RawDataElement):
            _raw(out, elem)
        else:
            _element(out, elem, encodings, ascii_safe)


def _pixel_data_vr(ds: Dataset, elem: DataElement) -> None:
    """pydicom's ambiguous-VR correction of Pixel Data (it sets the VR on the element)."""
    if elem.is_undefined_length:
        elem.VR = "OB"
    elif ds.original_encoding[0]:
        elem.VR = "OW"
    else:
        elem.VR = "OW" if int(ds.BitsAllocated) > 8 else "OB"


@functools.lru_cache(maxsize=64)
def _encodings(charset: str | tuple[str, ...]) -> tuple[list[str], bool]:
    """``convert_encodings`` of a Specific Character Set, and whether ASCII stays ASCII."""
    encodings = convert_encodings(list(charset) if isinstance(charset, tuple) else charset)
    return encodings, all(e in _ASCII_SAFE for e in encodings)


def _header(out: bytearray, tag: int, vr: str, length: int) -> None:
    if vr in _LONG:
        out += _HEAD_LONG.pack(tag >> 16, tag & 0xFFFF, vr.encode(), 0, length)
    elif length > 0xFFFF:
        raise _UnsupportedError("value too long for a 2-byte length (pydicom makes it UN)")
    else:
        out += _HEAD_SHORT.pack(tag >> 16, tag & 0xFFFF, vr.encode(), length)


def _raw(out: bytearray, elem: RawDataElement) -> None:
    vr, value = elem.VR, elem.value
    if not isinstance(vr, str) or len(vr) != 2 or elem.length == _UNDEFINED:
        raise _UnsupportedError("raw element")
    if not isinstance(value, bytes):
        raise _UnsupportedError("raw value")
    _header(out, int(elem.tag), vr, len(value))
    out += value


def _element(out: bytearray, elem: DataElement, encodings: list[str], ascii_safe: bool) -> None:
    vr, value = elem.VR, elem.value
    if len(vr) != 2 or isinstance(value, BufferedIOBase):
        raise _UnsupportedError("ambiguous VR or buffered value")
    if vr == "SQ":
        _sequence(out, elem, encodings)
        return
    if elem.is_undefined_length:
        raise _UnsupportedError("undefined length")
    data = _value(elem, value, vr, encodings, ascii_safe) if _vm(value) else b""
    _header(out, int(elem.tag), vr, len(data))
    out += data


def _vm(value: Any) -> int:
    """``DataElement.VM`` of a value that is not a sequence or a buffer."""
    if value is None:
        return 0
    if isinstance(value, str | bytes | PersonName):
        return 1 if value else 0
    try:
        iter(value)
    except TypeError:
        return 1
    return len(value)


def _sequence(out: bytearray, elem: DataElement, encodings: list[str]) -> None:
    """The sequence, written in place; defined lengths are filled in after each part."""
    undefined = elem.is_undefined_length
    start = len(out)
    _header(out, int(elem.tag), "SQ", _UNDEFINED)
    for item in [] if elem.is_empty else elem.value:
        if not isinstance(item, Dataset):
            raise _UnsupportedError("sequence item")
        out += _ITEM
        at = len(out)
        out += b"\xff\xff\xff\xff"
        _dataset(out, item, encodings)
        if getattr(item, "is_undefined_length_sequence_item", False):
            out += _ITEM_END
        else:
            out[at : at + 4] = _UINT32.pack(len(out) - at - 4)
    if undefined:
        out += _SEQUENCE_END
    else:
        out[start + 8 : start + 12] = _UINT32.pack(len(out) - start - 12)


def _value(elem: DataElement, value: Any, vr: str, encodings: list[str], ascii_safe: bool) -> bytes:
    if vr == "UI":
        return _padded(_joined(value).encode("iso8859"), b"\x00")
    if vr in _STRINGS:
        return _padded(_joined(value).encode("iso8859"), b" ")
    if vr in _TEXTS:
        return _padded(_text(value, encodings, ascii_safe), b" ")
    if vr in ("DS", "IS"):
        return _padded(_number_strings(value).encode("iso8859"), b" ")
    if vr in _NUMBERS:
        return _numbers(elem, value, _NUMBERS[vr])
    if vr in _BYTES or vr == "UN":
        if not isinstance(value, bytes | bytearray):
            raise _UnsupportedError("binary value")
        return bytes(value) + (b"\x00" if len(value) % 2 and vr != "UN" else b"")
    if vr in ("DA", "DT", "TM"):
        return _padded(_dates(value, vr).encode("iso8859"), b" ")
    if vr == "PN":
        return _person_names(value, encodings)
    if vr == "AT":
        return _tags(value)
    raise _UnsupportedError(vr)


def _padded(data: bytes, pad: bytes) -> bytes:
    return data + pad if len(data) % 2 else data


def _multi(value: Any) -> bool:
    if hasattr(value, "__array__"):
        raise _UnsupportedError("array value")  # pydicom joins an ndarray's items
    return isinstance(value, MultiValue | list | tuple)


def _joined(value: Any) -> str:
    if _multi(value):
        if not all(isinstance(v, str) for v in value):
            raise _UnsupportedError("string values")
        return "\\".join(value)
    if not isinstance(value, str):
        raise _UnsupportedError("string value")
    return value


def _text(value: Any, encodings: list[str], ascii_safe: bool) -> bytes:
    values = list(value) if _multi(value) else [value]
    if not all(isinstance(v, str) for v in values):
        raise _UnsupportedError("text value")
    return b"\\".join(
        v.encode("ascii") if ascii_safe and v.isascii() else encode_string(v, encodings)
        for v in values
    )


def _number_strings(value: Any) -> str:
    values = list(value) if _multi(value) else [value]
    return "\\".join(v.original_string if hasattr(v, "original_string") else str(v) for v in values)


def _numbers(elem: DataElement, value: Any, code: str) -> bytes:
    if hasattr(value, "append"):  # pydicom's test for several values
        if code == "h" and int(elem.tag) in (0x00283002, 0x00281101, 0x00281102, 0x00281103):
            raise _UnsupportedError("LUT descriptor")
        return struct.pack(f"<{len(value)}{code}", *value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return struct.pack(f"<{code}", value)
    raise _UnsupportedError("numeric value")


def _dates(value: Any, vr: str) -> str:
    if isinstance(value, str):
        return value
    values = list(value) if _multi(value) else [value]
    return "\\".join(v if isinstance(v, str) else _date(v, vr) for v in values)


def _date(value: Any, vr: str) -> str:
    if value is None:
        return ""
    if hasattr(value, "original_string"):
        return str(value.original_string)
    if vr == "DA" and isinstance(value, date):
        return value.strftime("%Y%m%d")
    if vr == "DT" and isinstance(value, datetime):
        return value.strftime("%Y%m%d%H%M%S.%f%z" if value.microsecond else "%Y%m%d%H%M%S%z")
    if vr == "TM" and isinstance(value, time):
        return value.strftime("%H%M%S.%f" if value.microsecond else "%H%M%S")
    raise _UnsupportedError("date value")


def _person_names(value: Any, encodings: list[str]) -> bytes:
    names = [value] if _vm(value) == 1 else list(value)
    if not all(isinstance(n, PersonName) for n in names):
        raise _UnsupportedError("person name")
    return _padded(b"\\".join(n.encode(encodings) for n in names), b" ")


def _tags(value: Any) -> bytes:
    values = [value] if isinstance(value, int) else list(value)
    if not all(isinstance(v, int) and 0 <= v <= 0xFFFFFFFF for v in values):
        raise _UnsupportedError("tag value")
    return b"".join(struct.pack("<HH", v >> 16, v & 0xFFFF) for v in values)
