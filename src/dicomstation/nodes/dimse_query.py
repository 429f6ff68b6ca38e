"""C-FIND: protocol-neutral :class:`Query` -> identifier dataset -> typed refs.

Refs are built with the same ``from_json`` constructors as DICOMweb results (from
the identifier's DICOM JSON), so matching keys and fields are identical whichever
protocol answered.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID

from dicomstation.errors import ConfigError, ProtocolError
from dicomstation.models import InstanceRef, Level, PatientRef, Query, SeriesRef, StudyRef
from dicomstation.nodes.base import CancelToken, Ref
from dicomstation.nodes.dimse_errors import (
    StatusCategory,
    check_status,
    missing_identifier,
    status_category,
)

__all__ = [
    "METADATA_KEYS",
    "VERIFICATION",
    "QueryRoot",
    "build_identifier",
    "iter_identifiers",
    "model_uid",
    "to_ref",
]


class QueryRoot(enum.StrEnum):
    """Query/Retrieve information model root."""

    STUDY = "study"
    PATIENT = "patient"


# Query/Retrieve information models (PS3.4 C.6); pynetdicom's sop_class names are
# generated at run time, so the UIDs are spelled here for the type checker.
_STUDY_FIND = UID("1.2.840.10008.5.1.4.1.2.2.1")
_STUDY_MOVE = UID("1.2.840.10008.5.1.4.1.2.2.2")
_STUDY_GET = UID("1.2.840.10008.5.1.4.1.2.2.3")
_PATIENT_FIND = UID("1.2.840.10008.5.1.4.1.2.1.1")
_PATIENT_MOVE = UID("1.2.840.10008.5.1.4.1.2.1.2")
_PATIENT_GET = UID("1.2.840.10008.5.1.4.1.2.1.3")
#: Verification SOP Class (C-ECHO)
VERIFICATION = UID("1.2.840.10008.1.1")

_MODELS: dict[tuple[QueryRoot, str], UID] = {
    (QueryRoot.STUDY, "C-FIND"): _STUDY_FIND,
    (QueryRoot.STUDY, "C-GET"): _STUDY_GET,
    (QueryRoot.STUDY, "C-MOVE"): _STUDY_MOVE,
    (QueryRoot.PATIENT, "C-FIND"): _PATIENT_FIND,
    (QueryRoot.PATIENT, "C-GET"): _PATIENT_GET,
    (QueryRoot.PATIENT, "C-MOVE"): _PATIENT_MOVE,
}

RETURN_KEYS: dict[Level, tuple[str, ...]] = {
    Level.PATIENT: (
        "PatientID",
        "PatientName",
        "PatientBirthDate",
        "PatientSex",
        "NumberOfPatientRelatedStudies",
    ),
    Level.STUDY: (
        "StudyInstanceUID",
        "PatientID",
        "PatientName",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "StudyID",
        "StudyDescription",
        "ReferringPhysicianName",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ),
    Level.SERIES: (
        "SeriesInstanceUID",
        "StudyInstanceUID",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
        "SeriesDate",
        "SeriesTime",
        "BodyPartExamined",
        "NumberOfSeriesRelatedInstances",
    ),
    Level.IMAGE: (
        "SOPInstanceUID",
        "SOPClassUID",
        "SeriesInstanceUID",
        "StudyInstanceUID",
        "InstanceNumber",
        "NumberOfFrames",
    ),
}
#: Extra keys asked for with ``include_fields=("all",)`` (DIMSE cannot ask for "all").
_ALL_EXTRA: dict[Level, tuple[str, ...]] = {
    Level.PATIENT: ("OtherPatientIDs", "PatientComments"),
    Level.STUDY: (
        "InstitutionName",
        "StudyComments",
        "OtherPatientIDs",
        "PatientAge",
        "SOPClassesInStudy",
        "PatientComments",
        "IssuerOfPatientID",
    ),
    Level.SERIES: (
        "SeriesDescription",
        "ProtocolName",
        "Manufacturer",
        "PerformedProcedureStepStartDate",
        "Laterality",
        "StationName",
        "PatientID",
        "PatientName",
        "StudyDate",
    ),
    Level.IMAGE: (
        "Rows",
        "Columns",
        "AcquisitionNumber",
        "ContentDate",
        "ContentTime",
        "ImageType",
        "TransferSyntaxUID",
    ),
}
#: Instance-level keys used by :meth:`DimseNode.metadata` (headers without bulk data).
METADATA_KEYS: tuple[str, ...] = (
    *RETURN_KEYS[Level.IMAGE],
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "AccessionNumber",
    "StudyID",
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "ImageType",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "SliceThickness",
    "SliceLocation",
    "FrameOfReferenceUID",
    "RescaleSlope",
    "RescaleIntercept",
    "WindowCenter",
    "WindowWidth",
    "AcquisitionNumber",
    "ContentDate",
    "ContentTime",
    "Manufacturer",
    "BodyPartExamined",
)
_NUMERIC = {
    "US": int,
    "UL": int,
    "SS": int,
    "SL": int,
    "UV": int,
    "SV": int,
    "FL": float,
    "FD": float,
}
_HEX_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")


def model_uid(root: QueryRoot, operation: str, level: Level) -> UID:
    """Information model for an operation; patient level always uses Patient Root."""
    return _MODELS[(QueryRoot.PATIENT if level is Level.PATIENT else root, operation)]


def _keyword(key: str) -> str:
    if _HEX_TAG.match(key):
        keyword = keyword_for_tag(int(key, 16))
        if keyword:
            return str(keyword)
    if tag_for_keyword(key) is None:
        raise ConfigError(
            f"unknown DICOM attribute {key!r} in query (use a keyword such as "
            "PatientName, or an 8-digit tag)"
        )
    return key


def _put(ds: Dataset, keyword: str, value: str | None) -> None:
    """Set ``keyword`` to ``value`` (None: an empty return key) with the dictionary VR."""
    tag = tag_for_keyword(keyword)
    assert tag is not None  # keywords are checked by _keyword()
    vr = dictionary_VR(tag).split(" or ")[0]
    if vr == "SQ":
        ds.add_new(tag, vr, DicomSequence([]))
        return
    if value is None or value == "":
        ds.add_new(tag, vr, None if vr in _NUMERIC else "")
        return
    if vr in _NUMERIC:
        try:
            ds.add_new(tag, vr, _NUMERIC[vr](value))
        except ValueError:
            raise ConfigError(f"{keyword} needs a number, got {value!r}") from None
        return
    ds.add_new(tag, vr, value)


def _wanted_keys(query: Query, level: Level, extra: Iterable[str]) -> list[str]:
    keys = list(RETURN_KEYS[level]) + list(extra)
    for field in query.include_fields:
        if field.lower() == "all":
            keys += _ALL_EXTRA[level]
        else:
            keys.append(_keyword(field))
    return list(dict.fromkeys(keys))


def build_identifier(query: Query, extra_keys: Iterable[str] = ()) -> Dataset:
    """The C-FIND identifier for ``query``: return keys, matching keys and parents.

    Raises
    ------
    ConfigError
        If a filter names an unknown attribute or has the wrong kind of value.
    """
    level = Level.parse(query.level)
    ds = Dataset()
    ds.QueryRetrieveLevel = level.value
    for keyword in _wanted_keys(query, level, extra_keys):
        _put(ds, keyword, None)
    for key, value in query.filters.items():
        _put(ds, _keyword(key), str(value))
    if query.study_uid and level in (Level.SERIES, Level.IMAGE):
        ds.StudyInstanceUID = query.study_uid
    if query.series_uid and level is Level.IMAGE:
        ds.SeriesInstanceUID = query.series_uid
    return ds


def to_json(identifier: Dataset, *, server: str) -> dict[str, Any]:
    """DICOM JSON of a C-FIND identifier (ProtocolError if the peer sent garbage)."""
    try:
        return dict(identifier.to_json_dict())
    except Exception as exc:  # pydicom raises many types on malformed values
        raise ProtocolError(
            f"cannot decode a C-FIND identifier: {exc}", server=server, operation="C-FIND"
        ) from exc


def to_ref(level: Level, obj: Mapping[str, Any]) -> Ref:
    """The typed ref for one result at ``level``."""
    builders: dict[Level, Callable[[Mapping[str, Any]], Ref]] = {
        Level.PATIENT: PatientRef.from_json,
        Level.STUDY: StudyRef.from_json,
        Level.SERIES: SeriesRef.from_json,
        Level.IMAGE: InstanceRef.from_json,
    }
    return builders[level](obj)


def iter_identifiers(
    assoc: Any,
    identifier: Dataset,
    model: UID,
    *,
    server: str,
    uid: str | None,
    timeout: float,
    cancel: CancelToken | None = None,
) -> Iterator[Dataset]:
    """Yield each Pending identifier of a C-FIND; map the final status.

    If the consumer stops early (or ``cancel`` is set) a C-CANCEL is sent and the
    remaining responses are drained, so the association can be released cleanly.
    """
    responses = assoc.send_c_find(identifier, model)
    finished = False
    try:
        for status, found in responses:
            if cancel is not None and cancel.cancelled:
                break
            code = int(status.Status) if "Status" in status else None
            if code is not None and status_category(code, "C-FIND") is StatusCategory.PENDING:
                if found is None:
                    raise missing_identifier(server=server, operation="C-FIND", uid=uid)
                yield found
                continue
            finished = True
            check_status(status, server=server, operation="C-FIND", uid=uid, timeout=timeout)
    finally:
        if not finished and assoc.is_established:
            _cancel_and_drain(assoc, responses, model)


def _cancel_and_drain(assoc: Any, responses: Iterator[Any], model: UID) -> None:
    assoc.send_c_cancel(1, query_model=model)
    for status, _found in responses:  # until the final (Cancel/Success) response
        if "Status" not in status:
            break
