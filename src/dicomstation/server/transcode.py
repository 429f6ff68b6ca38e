"""Instances re-encoded for WADO-RS: Explicit VR Little Endian, or as stored in a Part 10 file.

PS3.18 8.7.3.5.2: without a transfer-syntax parameter, ``application/dicom`` is
Explicit VR Little Endian. Compressed instances are decompressed by pydicom
(same SOP Instance UID); big-endian ones have their OW/OF/OL/OD/OV values and
pixel data swapped; files stored without a File Meta header get one.
"""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from dicomstation.server.pixels import NotDecodable, native_value, pixel_keyword, swap_to_little
from dicomstation.server.stored import has_part10_prefix, part10_bytes, read_stored

__all__ = ["explicit_le_bytes", "needs_rewrite", "stored_bytes"]

_WORD = {"OW": 2, "OL": 4, "OF": 4, "OD": 8, "OV": 8}


def _swap_values(ds: Dataset) -> None:
    """Swap every big-endian word value (not pixel data) to little endian, at any depth."""
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                _swap_values(item)
        elif (
            element.VR in _WORD and isinstance(element.value, bytes) and element.tag >> 16 != 0x7FE0
        ):
            element.value = swap_to_little(element.value, _WORD[element.VR])


def _to_little_endian(ds: Dataset) -> None:
    keyword = pixel_keyword(ds)
    pixels = native_value(ds) if keyword else b""
    _swap_values(ds)
    if keyword:
        ds[keyword].value = pixels


def explicit_le_bytes(path: Path) -> bytes:
    """The instance as a Part 10 file in Explicit VR Little Endian.

    Raises
    ------
    NotDecodable
        406 when pydicom cannot decompress the pixel data.
    """
    ds = read_stored(path)
    syntax = ds.file_meta.TransferSyntaxUID
    if syntax.is_compressed:
        try:
            ds.decompress(generate_instance_uid=False)  # same instance, not a new one
        except Exception as exc:  # any decoder failure: refuse, naming the instance
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise NotDecodable(
                406,
                f"cannot decompress instance {ds.SOPInstanceUID} ({syntax.name}): {reason}; "
                "ask for it as stored (transfer-syntax=*)",
            ) from None
    elif not syntax.is_little_endian:
        _to_little_endian(ds)
    ds.file_meta.TransferSyntaxUID = UID(ExplicitVRLittleEndian)
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def needs_rewrite(path: Path) -> bool:
    """True when the stored file is not a Part 10 file (no preamble and ``DICM``)."""
    return not has_part10_prefix(path)


def stored_bytes(path: Path) -> tuple[bytes, str]:
    """A file stored without File Meta as a valid Part 10 file, and its transfer syntax."""
    return part10_bytes(path)
