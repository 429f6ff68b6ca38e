"""Small helpers for the DICOM JSON model (PS3.18 F.2) shared by every node.

Values are read by keyword (``"PatientName"``) or by 8-hex-digit tag; the JSON
dictionaries themselves are kept untouched as the escape hatch on every ref.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["first_value", "tag_hex", "values"]

DicomJson = Mapping[str, Any]

#: Tags of the keywords the refs and the CLI read, so that reading them does not import
#: pydicom's dictionary (~0.3 s); any other keyword is looked up in pydicom's. A test
#: checks every entry against pydicom.
KNOWN_TAGS: dict[str, str] = {
    "AccessionNumber": "00080050",
    "BodyPartExamined": "00180015",
    "FrameTimeVector": "00181065",
    "ImageType": "00080008",
    "InstanceNumber": "00200013",
    "ModalitiesInStudy": "00080061",
    "Modality": "00080060",
    "NumberOfFrames": "00280008",
    "PatientBirthDate": "00100030",
    "PatientID": "00100020",
    "PatientName": "00100010",
    "PatientSex": "00100040",
    "ReferencedSOPInstanceUID": "00081155",
    "SOPClassUID": "00080016",
    "SOPInstanceUID": "00080018",
    "ScanOptions": "00180022",
    "ScanningSequence": "00180020",
    "SeriesDescription": "0008103E",
    "SeriesInstanceUID": "0020000E",
    "SeriesNumber": "00200011",
    "StudyDate": "00080020",
    "StudyDescription": "00081030",
    "StudyTime": "00080030",
    "StudyInstanceUID": "0020000D",
    "NumberOfStudyRelatedSeries": "00201206",
    "NumberOfStudyRelatedInstances": "00201208",
    "NumberOfSeriesRelatedInstances": "00201209",
    "QueryRetrieveLevel": "00080052",
    "RetrieveURL": "00081190",
    "SeriesDate": "00080021",
    "SeriesTime": "00080031",
    "Rows": "00280010",
    "Columns": "00280011",
    "ImagePositionPatient": "00200032",
    "SliceLocation": "00201041",
}


def tag_hex(keyword_or_tag: str) -> str:
    """Return the 8-hex-digit tag for a keyword, or the tag itself if already hex.

    Raises
    ------
    KeyError
        If the keyword is not in the DICOM dictionary.
    """
    if len(keyword_or_tag) == 8 and all(c in "0123456789abcdefABCDEF" for c in keyword_or_tag):
        return keyword_or_tag.upper()
    known = KNOWN_TAGS.get(keyword_or_tag)
    if known is not None:
        return known
    from pydicom.datadict import tag_for_keyword

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
        name = value.get("Alphabetic") or value.get("Ideographic") or value.get("Phonetic")
        return str(name or "")
    return "" if value is None else str(value)
