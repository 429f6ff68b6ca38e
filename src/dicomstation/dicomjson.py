"""Small helpers for the DICOM JSON model (PS3.18 F.2) shared by every node.

Values are read by keyword (``"PatientName"``) or by 8-hex-digit tag; the JSON
dictionaries themselves are kept untouched as the escape hatch on every ref.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydicom.datadict import tag_for_keyword

__all__ = ["first_value", "tag_hex", "values"]

DicomJson = Mapping[str, Any]


def tag_hex(keyword_or_tag: str) -> str:
    """Return the 8-hex-digit tag for a keyword, or the tag itself if already hex.

    Raises
    ------
    KeyError
        If the keyword is not in the DICOM dictionary.
    """
    if len(keyword_or_tag) == 8 and all(c in "0123456789abcdefABCDEF" for c in keyword_or_tag):
        return keyword_or_tag.upper()
    tag = tag_for_keyword(keyword_or_tag)
    if tag is None:
        raise KeyError(f"unknown DICOM keyword {keyword_or_tag!r}")
    return f"{tag:08X}"


def values(obj: DicomJson, keyword: str) -> list[Any]:
    """Return the Value list of an attribute (empty when absent)."""
    element = obj.get(tag_hex(keyword))
    if not element:
        return []
    value = element.get("Value")
    return list(value) if value else []


def first_value(obj: DicomJson, keyword: str) -> str:
    """Return the first value of an attribute as text ('' when absent).

    Person names (``{"Alphabetic": ...}``) give their alphabetic form, or the
    ideographic or phonetic one when that is all they have.
    """
    found = values(obj, keyword)
    if not found:
        return ""
    value = found[0]
    if isinstance(value, dict):
        found = value.get("Alphabetic") or value.get("Ideographic") or value.get("Phonetic")
        return str(found or "")
    return "" if value is None else str(value)
