"""DICOM JSON headers (no bulk data) made from instance files, for fast metadata."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

import pydicom

__all__ = ["file_header", "load_headers"]

_BULK_LIMIT = 1024  # bytes; larger binary values are left out of cached headers


def file_header(path: str) -> dict[str, Any]:
    """The DICOM JSON of a file's data set without pixel data or other bulk values."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    header: dict[str, Any] = ds.to_json_dict(
        bulk_data_threshold=_BULK_LIMIT, bulk_data_element_handler=lambda _element: ""
    )
    syntax = getattr(ds.file_meta, "TransferSyntaxUID", None)
    if syntax:
        header["00020010"] = {"vr": "UI", "Value": [str(syntax)]}
    return {k: v for k, v in header.items() if v.get("BulkDataURI", None) != ""}


def load_headers(rows: list[sqlite3.Row]) -> tuple[list[Mapping[str, Any]], list[tuple[str, str]]]:
    """Headers for rows of (sop_uid, path, header_json); also the ones newly made to cache."""
    headers: list[Mapping[str, Any]] = []
    fresh: list[tuple[str, str]] = []
    for sop_uid, path, cached in rows:
        if cached:
            headers.append(json.loads(cached))
            continue
        header = file_header(path)
        headers.append(header)
        fresh.append((json.dumps(header, separators=(",", ":")), sop_uid))
    return headers, fresh
