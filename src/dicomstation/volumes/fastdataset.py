"""Read a header as ``pydicom.dcmread(path, stop_before_pixels=True)`` does, in one pass.

An export needs every source header as a pydicom Dataset (highdicom reads UIDs and
positions of each, the SR lists each as evidence); ``dcmread`` took ~0.7 ms per CT
slice, half of loading a 64-slice series. For a file in Explicit or Implicit VR Little
Endian whose elements up to Pixel Data all have defined lengths, :func:`read_header`
makes the same objects pydicom makes: the same ``RawDataElement`` tuples (tag, VR,
length, value bytes, value offset) for the file meta and the data set, put into
pydicom's own ``Dataset``, ``FileMetaDataset`` and ``FileDataset`` with the same calls
``read_partial`` and ``_read_file_meta_info`` make (original encoding, the elements they
decode), so values are decoded later by pydicom exactly as from a pydicom read. Anything
else (no DICM prefix, another transfer syntax, an undefined length, a VR pydicom does
not know, a command set, a file meta group length that does not match, a truncated
value, a first element pydicom's implicit-VR heuristic would question) is read by
``dcmread`` itself.
tests/volumes/test_fastdataset.py compares both on files of ../shared/data. What is
mirrored is pydicom 3.0's reader (checked on 3.0.2): on another version (:data:`AVAILABLE`
False) every header is read by ``dcmread``. docs/upstream/pydicom.md has the proposal.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path

import pydicom
from pydicom.charset import convert_encodings
from pydicom.dataelem import (
    DataElement,
    RawDataElement,
    convert_raw_data_element,
    empty_value_for_VR,
)
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.filereader import ENCODED_VR
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

__all__ = ["AVAILABLE", "read_header"]

#: What is mirrored is pydicom 3.0's reader (checked on 3.0.2); another version reads
#: every header through dcmread.
AVAILABLE = pydicom.__version__.startswith("3.0.")

_FIRST = 64 * 1024
_ELEMENT = struct.Struct("<HH2sH")
_IMPLICIT_ELEMENT = struct.Struct("<HHI")
_UINT32 = struct.Struct("<I")
_LONG = frozenset(str(vr).encode() for vr in EXPLICIT_VR_LENGTH_32)
_PIXELS = frozenset({0x7FE00010, 0x7FE00009, 0x7FE00008})
_UNDEFINED = 0xFFFFFFFF
_VR_NAMES = {vr: vr.decode("iso8859") for vr in ENCODED_VR}


_Elements = dict[BaseTag, DataElement | RawDataElement]


class _GiveUpError(Exception):
    pass


class _ShortError(Exception):
    """The head read so far ends inside the header."""


def read_header(path: Path | str) -> FileDataset:
    """``pydicom.dcmread(path, stop_before_pixels=True)``, made faster for plain files."""
    if AVAILABLE:
        try:
            return _read(os.fspath(path))
        except Exception:  # any doubt (or error): pydicom reads it, and raises
            pass
    return pydicom.dcmread(path, stop_before_pixels=True)


def _read(path: str) -> FileDataset:
    with open(path, "rb") as f:
        data = f.read(_FIRST)
        try:
            return _parse(path, data, complete=len(data) < _FIRST)
        except _ShortError:
            return _parse(path, data + f.read(), complete=True)  # a head over 64 kB


def _parse(path: str, data: bytes, *, complete: bool) -> FileDataset:
    if len(data) < 132 or data[128:132] != b"DICM":
        raise _GiveUpError
    meta_raw, offset = _elements(data, 132, _not_file_meta, complete)
    file_meta = _file_meta(meta_raw, offset)
    syntax = file_meta.get("TransferSyntaxUID")
    if syntax not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        raise _GiveUpError
    implicit = syntax == ImplicitVRLittleEndian
    raw, _ = _elements(data, offset, _PIXELS.__contains__, complete, implicit)
    if any(tag >> 16 == 0 for tag in raw):
        raise _GiveUpError  # a command set: pydicom reads it another way
    charset = raw.get(BaseTag(0x00080005))
    if isinstance(charset, RawDataElement):  # pydicom decodes it to know the encoding
        convert_encodings(convert_raw_data_element(charset).value)
    # read_dataset's Dataset only hands its element dict on (Dataset.__init__ copies
    # nothing else), so the FileDataset is made from the dict itself
    ds = FileDataset(path, raw, data[:128], file_meta, implicit, True)
    ds.set_original_encoding(implicit, True, ds._character_set)
    return ds


def _file_meta(raw: _Elements, end: int) -> FileMetaDataset:
    """What ``_read_file_meta_info`` makes of these elements (and decodes of them)."""
    file_meta = FileMetaDataset(raw)
    file_meta.set_original_encoding(
        is_implicit_vr=False, is_little_endian=True, character_encoding="iso8859"
    )
    if not file_meta._dict:
        raise _GiveUpError
    file_meta[next(iter(file_meta.elements())).tag]
    length = file_meta.get("FileMetaInformationGroupLength")
    if length is not None and length != end - (132 + 12):
        raise _GiveUpError  # pydicom logs the mismatch
    return file_meta


def _empty(vr: str | None) -> bytes | None:
    value = empty_value_for_VR(vr, raw=True)
    if value is not None and not isinstance(value, bytes):
        raise _GiveUpError
    return value


def _looks_explicit(data: bytes, offset: int) -> bool:
    """pydicom's test of a data set's first element: two upper-case letters where a VR goes."""
    return 0x40 < data[offset + 4] < 0x5B and 0x40 < data[offset + 5] < 0x5B


def _not_file_meta(tag: int) -> bool:
    return tag >> 16 != 2


def _elements(
    data: bytes,
    offset: int,
    stop_at: Callable[[int], bool],
    complete: bool,
    implicit: bool = False,
) -> tuple[_Elements, int]:
    """pydicom's raw elements from ``offset`` until ``stop_at(tag)`` or the end of the file.

    ``data`` is the whole file when ``complete``, else its head (_ShortError: read on).
    In ``implicit`` VR the elements' VR is None: pydicom looks it up when decoding.
    """
    found: _Elements = {}
    size, first, vr_bytes = len(data), True, b""
    while True:
        if offset + 12 > size and not complete:
            raise _ShortError
        if offset == size:
            return found, offset
        if offset + 8 > size:
            raise _GiveUpError  # a partial element at the end: pydicom's EOF handling
        if first:
            first = False
            if _looks_explicit(data, offset) == implicit:
                raise _GiveUpError  # pydicom's heuristic would switch the encoding
        header = 8
        if implicit:
            group, element, length = _IMPLICIT_ELEMENT.unpack_from(data, offset)
        else:
            group, element, vr_bytes, length = _ELEMENT.unpack_from(data, offset)
        tag = group << 16 | element
        if stop_at(tag):  # as pydicom's stop_when: before the value (and the next encoding)
            return found, offset
        if not implicit:
            if vr_bytes not in ENCODED_VR:
                raise _GiveUpError  # pydicom guesses (implicit VR, or a 2-byte length)
            if vr_bytes in _LONG:
                if offset + 12 > size:
                    raise _GiveUpError
                length = _UINT32.unpack_from(data, offset + 8)[0]
                header = 12
        if tag == 0xFFFEE00D or length == _UNDEFINED:
            raise _GiveUpError
        start = offset + header
        if start + length > size:
            if not complete:
                raise _ShortError
            raise _GiveUpError  # truncated
        vr = None if implicit else _VR_NAMES[vr_bytes]
        value = data[start : start + length] if length else _empty(vr)
        key = BaseTag(tag)
        found[key] = RawDataElement(key, vr, length, value, start, implicit, True)
        offset = start + length
