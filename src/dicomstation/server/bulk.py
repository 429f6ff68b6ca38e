"""Bulk data: URIs in metadata for every bulk value, and the values those URIs name.

Cached headers keep every bulk value (pixel, overlay and waveform data, large
private OB...) as a marker with an empty ``BulkDataURI``, at any depth
(:mod:`dicomstation.database.headers`). :func:`with_bulk_uris` turns each marker
into a URI under the instance (``bulkdata/60003000``, or inside sequences
``bulkdata/54000100/0/54001010``: tag, 0-based item index, tag), and
:func:`bulk_value` reads the value back, little endian.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import HTTPException
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomstation.database.headers import stored_syntax
from dicomstation.server.pixels import swap_to_little

__all__ = ["bulk_value", "with_bulk_uris"]

_WORD = {"OW": 2, "OL": 4, "OF": 4, "OD": 8, "OV": 8}


def with_bulk_uris(header: Mapping[str, Any], base: str, prefix: str = "") -> dict[str, Any]:
    """A copy of ``header`` whose empty BulkDataURI markers point under ``base/bulkdata/``."""
    out: dict[str, Any] = {}
    for tag, element in header.items():
        if element.get("BulkDataURI") == "":
            element = {**element, "BulkDataURI": f"{base}/bulkdata/{prefix}{tag}"}
        elif element.get("vr") == "SQ" and element.get("Value"):
            items = [
                with_bulk_uris(item, base, f"{prefix}{tag}/{index}/")
                for index, item in enumerate(element["Value"])
            ]
            element = {**element, "Value": items}
        out[tag] = element
    return out


def _tag(text: str) -> int:
    if len(text) != 8 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise HTTPException(400, f"invalid tag {text!r} in bulk data URI: use 8 hex digits")
    return int(text, 16)


def _item(ds: Dataset, tag: int, index_text: str, sop: str) -> Dataset:
    element = ds.get(tag)
    if element is None or not isinstance(element.value, Sequence):
        raise HTTPException(404, f"instance {sop} has no sequence {tag:08X}")
    if not index_text.isdigit() or int(index_text) >= len(element.value):
        raise HTTPException(404, f"sequence {tag:08X} of instance {sop} has no item {index_text}")
    item: Dataset = element.value[int(index_text)]
    return item


def bulk_value(ds: Dataset, where: str, sop: str) -> bytes:
    """The binary value at ``where`` (``tag`` or ``tag/index/.../tag``), little endian.

    Raises
    ------
    fastapi.HTTPException
        400 for a malformed path, 404 when the instance has no binary value there.
    """
    pieces = where.strip("/").split("/")
    if len(pieces) % 2 != 1:
        raise HTTPException(400, f"invalid bulk data path {where!r}: tag[/item/tag...]")
    current = ds
    for position in range(0, len(pieces) - 1, 2):
        current = _item(current, _tag(pieces[position]), pieces[position + 1], sop)
    tag = _tag(pieces[-1])
    element = current.get(tag)
    if element is None or not isinstance(element.value, bytes):
        raise HTTPException(404, f"instance {sop} has no bulk data at {where}")
    value: bytes = element.value
    if not stored_syntax(ds).is_little_endian:
        value = swap_to_little(value, _WORD.get(str(element.VR), 1))
    return value
