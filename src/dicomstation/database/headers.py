"""DICOM JSON headers (no bulk data) made from instance files, for fast metadata.

Bulk values (pixel data, overlay and waveform data, large private OB values...)
are kept as ``{"vr": ..., "BulkDataURI": ""}`` markers at every level, so the
DICOMweb server can advertise each one it serves; the server fills the URIs.
Files without a File Meta header are read too (forced), with the transfer
syntax taken from the data set's own encoding.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

__all__ = ["PIXEL_TAGS", "file_header", "header_tags", "load_headers", "stored_syntax"]

_BULK_LIMIT = 1024  # bytes; larger binary values are markers in cached headers
_BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
PIXEL_TAGS = ("7FE00008", "7FE00009", "7FE00010")
_PIXEL_KEYS = frozenset(int(t, 16) for t in PIXEL_TAGS)


def stored_syntax(ds: Dataset) -> UID:
    """The transfer syntax a read data set is encoded in (its file meta, else its encoding)."""
    meta = getattr(ds, "file_meta", None)
    syntax = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if syntax:
        return UID(str(syntax))
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if not little:
        return UID(ExplicitVRBigEndian)
    return UID(ImplicitVRLittleEndian if implicit in (True, None) else ExplicitVRLittleEndian)


def _vr_of(ds: Dataset, tag: int, raw_vr: str | None) -> str:
    if raw_vr:
        return str(raw_vr)
    if tag == 0x7FE00010:
        return "OW" if int(ds.get("BitsAllocated", 8) or 8) > 8 else "OB"
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    return "OB" if " or " in vr else vr


def _bulk_markers(ds: Dataset, syntax: UID) -> dict[str, dict[str, str]]:
    """Remove the top-level bulk values from ``ds`` (unread) and return their markers."""
    markers: dict[str, dict[str, str]] = {}
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        vr = _vr_of(ds, int(tag), getattr(raw, "VR", None))
        if int(tag) == 0x7FE00010 and syntax.is_compressed:
            vr = "OB"  # encapsulated
        length = getattr(raw, "length", 0) or 0
        if int(tag) in _PIXEL_KEYS or (vr in _BULK_VRS and length > _BULK_LIMIT):
            markers[f"{int(tag):08X}"] = {"vr": vr, "BulkDataURI": ""}
            del ds[tag]
    return markers


def file_header(path: str) -> dict[str, Any]:
    """The DICOM JSON of a file's data set, with bulk values as empty-URI markers."""
    ds = pydicom.dcmread(path, force=True, defer_size=_BULK_LIMIT)
    syntax = stored_syntax(ds)
    markers = _bulk_markers(ds, syntax)
    header: dict[str, Any] = ds.to_json_dict(
        bulk_data_threshold=_BULK_LIMIT, bulk_data_element_handler=lambda _element: ""
    )
    header.update(markers)
    header["00020010"] = {"vr": "UI", "Value": [str(syntax)]}
    return dict(sorted(header.items()))


def _stale(header: Mapping[str, Any]) -> bool:
    """A header cached before bulk markers were kept (it has Rows but no pixel marker)."""
    return "00280010" in header and not any(t in header for t in PIXEL_TAGS)


def load_headers(rows: list[sqlite3.Row]) -> tuple[list[Mapping[str, Any]], list[tuple[str, str]]]:
    """Headers for rows of (sop_uid, path, header_json); also the ones newly made to cache."""
    headers: list[Mapping[str, Any]] = []
    fresh: list[tuple[str, str]] = []
    for sop_uid, path, cached in rows:
        if cached:
            header = json.loads(cached)
            if not _stale(header):
                headers.append(header)
                continue
        header = file_header(path)
        headers.append(header)
        fresh.append((json.dumps(header, separators=(",", ":")), sop_uid))
    return headers, fresh


def header_tags(row: sqlite3.Row, tags: frozenset[str]) -> Mapping[str, Any]:
    """Top-level ``tags`` (8 hex digits) of a row of (sop_uid, path, header_json): from the
    cached header, else read from the file alone (a few elements, not a whole header: a
    search's default attributes must not cost a full parse per result)."""
    _sop_uid, path, cached = row
    if cached:
        header: Mapping[str, Any] = json.loads(cached)
        if not _stale(header):
            return header
    ds = pydicom.dcmread(
        path, force=True, stop_before_pixels=True, specific_tags=[int(t, 16) for t in tags]
    )
    return {k: v for k, v in ds.to_json_dict(bulk_data_threshold=_BULK_LIMIT).items() if k in tags}
