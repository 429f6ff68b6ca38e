"""A fast header reader for classic single-frame explicit or implicit VR little endian images.

``pydicom.dcmread`` builds an element object for every attribute of a header
(about 1 ms per CT slice), which dominated the load of a 300-slice series. This
reader walks the top-level elements of the file's first bytes with ``struct``,
keeps the ~30 values the loader needs and stops at Pixel Data. It gives up
(returns ``None``, so the caller uses pydicom) on anything it does not handle
exactly like pydicom: other transfer syntaxes, multi-frame or enhanced images,
Siemens mosaics, modality LUTs, undefined-length elements before Pixel Data,
non-ASCII text, malformed values, a header longer than the bytes read.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

from dicomstation.volumes.model import FrameHeader, SliceSource

__all__ = ["fast_frame"]

_FIRST_BYTES = 16 * 1024
_HEAD_BYTES = 256 * 1024
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_IMPLICIT_LE = "1.2.840.10008.1.2"
_LONG_VRS = frozenset(
    {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UT", b"UN", b"UC", b"UR", b"SV", b"UV"}
)
_SHORT_VRS = frozenset(
    {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN"}
    | {b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
)
_ELEMENT = struct.Struct("<HH2sH")
_IMPLICIT_ELEMENT = struct.Struct("<HHI")  # group, element, 4-byte length
_UINT32 = struct.Struct("<I")
_PIXEL_DATA = 0x7FE00010
_GIVE_UP = frozenset(
    {
        0x00283000,  # Modality LUT Sequence
        0x52009229,  # Shared Functional Groups Sequence
        0x52009230,  # Per-frame Functional Groups Sequence
        0x00280008,  # Number of Frames
        0x00280006,  # Planar Configuration (colour: pydicom's decoder handles it)
    }
)
# tag -> (field, kind); kinds: us, str, int, float, floats
_WANTED: dict[int, tuple[str, str]] = {
    0x00080008: ("image_type", "strs"),
    0x00080016: ("sop_class_uid", "str"),
    0x00080018: ("sop_instance_uid", "str"),
    0x00080032: ("acquisition_time", "str"),
    0x00080060: ("modality", "str"),
    0x0008103E: ("series_description", "str"),
    0x00180050: ("slice_thickness", "float"),
    0x00180081: ("echo_time", "float"),
    0x00180086: ("echo_number", "int"),
    0x00181060: ("trigger_time", "float"),
    0x00181063: ("frame_time", "float"),
    0x00181164: ("imager_pixel_spacing", "floats"),
    0x0020000D: ("study_instance_uid", "str"),
    0x0020000E: ("series_instance_uid", "str"),
    0x00200012: ("acquisition_number", "int"),
    0x00200013: ("instance_number", "int"),
    0x00200032: ("position", "floats"),
    0x00200037: ("orientation", "floats"),
    0x00200052: ("frame_of_reference_uid", "str"),
    0x00200100: ("temporal_position", "int"),
    0x00280002: ("samples_per_pixel", "us"),
    0x00280004: ("photometric_interpretation", "str"),
    0x00280010: ("rows", "us"),
    0x00280011: ("columns", "us"),
    0x00280030: ("pixel_spacing", "floats"),
    0x00280100: ("bits_allocated", "us"),
    0x00280101: ("bits_stored", "us"),
    0x00280103: ("pixel_representation", "us"),
    0x00281052: ("rescale_intercept", "float"),
    0x00281053: ("rescale_slope", "float"),
}


#: Wanted, give-up and Pixel Data tags: the loop looks each element's tag up once.
_SPECIAL = frozenset(_WANTED) | _GIVE_UP | {_PIXEL_DATA}
#: VR -> whether its length is the 4-byte form (absent: a VR this reader gives up on).
_IS_LONG_VR = {vr: True for vr in _LONG_VRS} | {vr: False for vr in _SHORT_VRS}

#: Past this tag no wanted or give-up attribute follows (Modality LUT Sequence is the last).
_LAST_WANTED = 0x00283000


class _GiveUpError(Exception):
    pass


def fast_frame(path: Path) -> FrameHeader | None:
    """The FrameHeader of ``path`` as the pydicom path would make it, or None (use pydicom)."""
    try:
        fd = os.open(path, os.O_RDONLY)  # (a plain descriptor: no buffered file object)
    except OSError:
        return None
    try:
        # Most headers end within a few kB: read 16 kB first, not 256 kB for every file
        # (the walk up to a success is the same on any longer head, so only a head
        # that ran short is read again, in full).
        head = os.pread(fd, _FIRST_BYTES, 0)
        parsed = _try_parse(head, fd)
        if parsed is None and len(head) == _FIRST_BYTES:
            parsed = _try_parse(os.pread(fd, _HEAD_BYTES, 0), fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    if parsed is None:
        return None
    f, offset = parsed
    if (
        "rows" not in f
        or "columns" not in f
        or "MOSAIC" in [t.upper() for t in f.get("image_type", ())]
    ):
        return None
    bits = f.get("bits_allocated") or 16
    frame_time = f.get("frame_time")
    return FrameHeader(
        source=SliceSource(path, f.get("sop_instance_uid", ""), None),
        rows=f["rows"],
        columns=f["columns"],
        samples_per_pixel=f.get("samples_per_pixel") or 1,
        photometric_interpretation=f.get("photometric_interpretation", "MONOCHROME2"),
        transfer_syntax_uid=f["transfer_syntax"],
        position=_n(f.get("position"), 3),
        orientation=_n(f.get("orientation"), 6),
        pixel_spacing=_n(f.get("pixel_spacing") or f.get("imager_pixel_spacing"), 2),
        slice_thickness=f.get("slice_thickness"),
        rescale_slope=f.get("rescale_slope") or 1.0,
        rescale_intercept=f.get("rescale_intercept") or 0.0,
        bits_allocated=bits,
        bits_stored=f.get("bits_stored") or bits,
        pixel_representation=f.get("pixel_representation") or 0,
        number_of_frames=1,
        series_instance_uid=f.get("series_instance_uid", ""),
        study_instance_uid=f.get("study_instance_uid", ""),
        frame_of_reference_uid=f.get("frame_of_reference_uid") or None,
        modality=f.get("modality", "OT"),
        sop_class_uid=f.get("sop_class_uid", ""),
        series_description=f.get("series_description", ""),
        instance_number=f.get("instance_number"),
        acquisition_number=f.get("acquisition_number"),
        echo_number=f.get("echo_number"),
        echo_time=f.get("echo_time"),
        temporal_position=f.get("temporal_position"),
        trigger_time=f.get("trigger_time"),
        acquisition_time=f.get("acquisition_time", ""),
        image_type=f.get("image_type", ()),
        frame_time_ms=frame_time,
        has_pixel_data=True,
        pixel_offset=offset,
    )


def _n(value: tuple[float, ...] | None, n: int) -> Any:
    return value if value is not None and len(value) == n else None


def _try_parse(head: bytes, fd: int) -> tuple[dict[str, Any], int] | None:
    try:
        return _parse(head, fd)
    except (_GiveUpError, struct.error, ValueError, UnicodeDecodeError, IndexError):
        return None


def _parse(head: bytes, fd: int) -> tuple[dict[str, Any], int] | None:
    """Fields and Pixel Data offset; stops after group 0028 when Pixel Data ends the file."""
    if len(head) < 144 or head[128:132] != b"DICM":
        return None
    meta_end = 144 + struct.unpack_from("<I", head, 140)[0]
    syntax = _meta_syntax(head, meta_end)
    if syntax not in (_EXPLICIT_LE, _IMPLICIT_LE):
        return None
    implicit = syntax == _IMPLICIT_LE  # there, an undefined length is a sequence's
    fields: dict[str, Any] = {"transfer_syntax": syntax}
    pos, end, tail_checked, vr = meta_end, len(head), False, b"SQ"
    unpack = (_IMPLICIT_ELEMENT if implicit else _ELEMENT).unpack_from
    special, long_vr = _SPECIAL, _IS_LONG_VR
    while pos + 8 <= end:
        if implicit:
            group, element, length = unpack(head, pos)
        else:
            group, element, vr, length = unpack(head, pos)
        tag = group << 16 | element
        if tag in special:  # one look-up for the few tags that matter, in the common case
            if tag == _PIXEL_DATA:
                return fields, pos
            if tag in _GIVE_UP:
                raise _GiveUpError
        if tag > _LAST_WANTED and not tail_checked:
            tail_checked = True
            offset = _pixel_data_at_end(fields, fd, implicit)
            if offset is not None:
                return fields, offset
        is_long = False if implicit else long_vr.get(vr)
        if is_long:
            length, pos = _UINT32.unpack_from(head, pos + 8)[0], pos + 12
        elif is_long is None:
            raise _GiveUpError
        else:
            pos += 8
        if length == 0xFFFFFFFF:
            if vr != b"SQ":
                raise _GiveUpError  # encapsulated or implicit VR inside: pydicom's job
            pos = _skip_sequence(head, pos, implicit)
            continue
        if pos + length > end:
            raise _GiveUpError
        if tag in special:
            name, kind = _WANTED[tag]
            fields[name] = _value(head[pos : pos + length], kind)
        pos += length
    return None  # no Pixel Data within the head


def _pixel_data_at_end(fields: dict[str, Any], fd: int, implicit: bool) -> int | None:
    """Offset of a native Pixel Data element that ends the file, found from its expected size.

    Vendor headers put large private groups between the image attributes and the
    pixels; when the last element of the file is Pixel Data of exactly the size
    the image attributes give, walking those groups is not needed.
    """
    try:
        bits, rows, columns = fields["bits_allocated"], fields["rows"], fields["columns"]
    except KeyError:
        return None
    size = rows * columns * (fields.get("samples_per_pixel") or 1) * bits // 8
    size += size % 2
    end, header_size = os.fstat(fd).st_size, 8 if implicit else 12
    start = end - size - header_size
    if bits not in (8, 16, 32) or start < 0:
        return None
    header = os.pread(fd, header_size, start)
    if header[:4] != struct.pack("<HH", 0x7FE0, 0x0010):
        return None
    if not implicit and (header[4:6] not in (b"OW", b"OB") or header[6:8] != b"\0\0"):
        return None
    return start if struct.unpack_from("<I", header, header_size - 4)[0] == size else None


_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD


def _skip_sequence(head: bytes, pos: int, implicit: bool) -> int:
    """Position after an undefined-length sequence whose value starts at ``pos``."""
    while True:
        group, element = struct.unpack_from("<HH", head, pos)
        length = struct.unpack_from("<I", head, pos + 4)[0]
        tag, pos = group << 16 | element, pos + 8
        if tag == _SEQUENCE_END:
            return pos
        if tag != _ITEM:
            raise _GiveUpError
        pos = _skip_item(head, pos, implicit) if length == 0xFFFFFFFF else pos + length
        if pos > len(head):
            raise _GiveUpError


def _skip_item(head: bytes, pos: int, implicit: bool) -> int:
    """Position after an undefined-length item (explicit or implicit VR) starting at ``pos``."""
    while True:
        group, element = struct.unpack_from("<HH", head, pos)
        if group << 16 | element == _ITEM_END:
            return pos + 8
        vr = b"SQ" if implicit else head[pos + 4 : pos + 6]
        if implicit:
            length, pos = struct.unpack_from("<I", head, pos + 4)[0], pos + 8
        elif vr in _LONG_VRS:
            length, pos = struct.unpack_from("<I", head, pos + 8)[0], pos + 12
        elif vr.isalpha() and vr.isupper():
            length, pos = struct.unpack_from("<H", head, pos + 6)[0], pos + 8
        else:
            raise _GiveUpError
        if length == 0xFFFFFFFF:
            if vr != b"SQ":
                raise _GiveUpError
            pos = _skip_sequence(head, pos, implicit)
        else:
            pos += length
        if pos > len(head):
            raise _GiveUpError


def _meta_syntax(head: bytes, meta_end: int) -> str:
    pos = 132
    while pos + 8 <= meta_end:
        group, element = struct.unpack_from("<HH", head, pos)
        vr = head[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            length, pos = struct.unpack_from("<I", head, pos + 8)[0], pos + 12
        else:
            length, pos = struct.unpack_from("<H", head, pos + 6)[0], pos + 8
        if (group, element) == (0x0002, 0x0010):
            return head[pos : pos + length].rstrip(b"\x00 ").decode("ascii")
        pos += length
    return ""


def _value(raw: bytes, kind: str) -> Any:
    if kind == "us":
        return struct.unpack_from("<H", raw)[0] if len(raw) >= 2 else None
    text = raw.decode("ascii").rstrip("\x00 ").lstrip(" ")
    if kind == "str":
        return text
    parts = [p.strip(" \x00") for p in text.split("\\")] if text else []
    if kind == "strs":
        return tuple(parts)
    if not parts:
        return None
    if "" in parts:
        _give_up()
    if kind == "floats":
        return tuple(float(p) for p in parts)
    if kind == "float":
        return float(parts[0]) if len(parts) == 1 else _give_up()
    number = float(parts[0])
    return int(number) if number.is_integer() else _give_up()


def _give_up() -> None:
    raise _GiveUpError
