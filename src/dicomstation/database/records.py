"""SQL for each query level, and rows turned into DICOM JSON + typed refs."""

from __future__ import annotations

import sqlite3
from typing import Any

from dicomstation.models import InstanceRef, Level, PatientRef, SeriesRef, StudyRef

__all__ = ["CACHE_HEADER", "HEADER_ROWS", "LEVEL_SQL", "first_row", "person_name", "row_to_ref"]

_PATIENT_COLS = "p.patient_id, p.patient_name, p.birth_date, p.sex"
_STUDY_COLS = (
    "st.study_uid, st.study_date, st.study_time, st.accession_number,"
    " st.description AS study_description,"
    " st.referring_physician, st.study_id"
)
_STUDY_COUNTS = (
    "(SELECT COUNT(*) FROM series c WHERE c.study_uid = st.study_uid) AS n_series,"
    " (SELECT COUNT(*) FROM instances ci JOIN series cs ON ci.series_uid = cs.series_uid"
    "  WHERE cs.study_uid = st.study_uid) AS n_instances,"
    " (SELECT GROUP_CONCAT(DISTINCT m.modality) FROM series m"
    "  WHERE m.study_uid = st.study_uid) AS modalities"
)
_SERIES_COLS = (
    "se.series_uid, se.modality, se.series_number, se.description AS series_description,"
    " se.body_part,"
    " se.series_date, se.frame_of_reference_uid"
)
_FROM_STUDY = "studies st JOIN patients p ON p.patient_key = st.patient_key"
_FROM_SERIES = f"{_FROM_STUDY} JOIN series se ON se.study_uid = st.study_uid"
_FROM_IMAGE = f"{_FROM_SERIES} JOIN instances i ON i.series_uid = se.series_uid"

LEVEL_SQL: dict[Level, tuple[str, str]] = {
    Level.PATIENT: (f"SELECT DISTINCT {_PATIENT_COLS} FROM {_FROM_STUDY}", "p.patient_name"),
    Level.STUDY: (
        f"SELECT {_PATIENT_COLS}, {_STUDY_COLS}, {_STUDY_COUNTS} FROM {_FROM_STUDY}",
        "st.study_date DESC, st.study_time DESC, st.study_uid",
    ),
    Level.SERIES: (
        f"SELECT {_PATIENT_COLS}, {_STUDY_COLS}, {_SERIES_COLS}, (SELECT COUNT(*) FROM instances"
        f" ci WHERE ci.series_uid = se.series_uid) AS n_instances FROM {_FROM_SERIES}",
        "se.series_number, se.series_uid",
    ),
    Level.IMAGE: (
        f"SELECT {_PATIENT_COLS}, {_STUDY_COLS}, {_SERIES_COLS}, i.sop_uid, i.sop_class_uid,"
        f" i.instance_number, i.number_of_frames, i.rows, i.columns, i.transfer_syntax"
        f" FROM {_FROM_IMAGE}",
        "i.instance_number, i.sop_uid",
    ),
}

# row column -> (tag, VR)
_TAGS: dict[str, tuple[str, str]] = {
    "patient_id": ("00100020", "LO"),
    "patient_name": ("00100010", "PN"),
    "birth_date": ("00100030", "DA"),
    "sex": ("00100040", "CS"),
    "study_uid": ("0020000D", "UI"),
    "study_date": ("00080020", "DA"),
    "study_time": ("00080030", "TM"),
    "accession_number": ("00080050", "SH"),
    "study_description": ("00081030", "LO"),
    "series_description": ("0008103E", "LO"),
    "referring_physician": ("00080090", "PN"),
    "study_id": ("00200010", "SH"),
    "n_series": ("00201206", "IS"),
    "modalities": ("00080061", "CS"),
    "series_uid": ("0020000E", "UI"),
    "modality": ("00080060", "CS"),
    "series_number": ("00200011", "IS"),
    "body_part": ("00180015", "CS"),
    "series_date": ("00080021", "DA"),
    "frame_of_reference_uid": ("00200052", "UI"),
    "sop_uid": ("00080018", "UI"),
    "sop_class_uid": ("00080016", "UI"),
    "instance_number": ("00200013", "IS"),
    "number_of_frames": ("00280008", "IS"),
    "rows": ("00280010", "US"),
    "columns": ("00280011", "US"),
    "transfer_syntax": ("00083002", "UI"),
}
_COUNT_TAG = {Level.STUDY: "00201208", Level.SERIES: "00201209"}


_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


def person_name(value: str) -> dict[str, str]:
    """DICOM JSON of a stored person name ``A=I=P``: each non-empty group by its name."""
    groups = zip(_PN_GROUPS, value.split("="), strict=False)
    return {name: text for name, text in groups if text}


def _element(vr: str, value: Any) -> dict[str, Any]:
    if value is None or value == "":
        return {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": [person_name(str(value))]}
    if vr == "CS" and isinstance(value, str) and "," in value:
        return {"vr": vr, "Value": sorted(v for v in value.split(",") if v)}
    if vr in ("IS", "US"):
        return {"vr": vr, "Value": [int(value)]}
    return {"vr": vr, "Value": [value]}


def row_to_json(row: sqlite3.Row, level: Level) -> dict[str, Any]:
    """DICOM JSON for one row, with QueryRetrieveLevel-appropriate count attributes."""
    obj: dict[str, Any] = {"00080052": {"vr": "CS", "Value": [level.value]}}
    for key in row.keys():  # noqa: SIM118 - sqlite3.Row needs keys()
        value = row[key]
        if key == "n_instances":
            obj[_COUNT_TAG.get(level, "00201209")] = _element("IS", value)
        elif key in _TAGS:
            tag, vr = _TAGS[key]
            obj[tag] = _element(vr, value)
    return dict(sorted(obj.items()))


def row_to_ref(row: sqlite3.Row, level: Level) -> PatientRef | StudyRef | SeriesRef | InstanceRef:
    """A typed ref (with its DICOM JSON) for one row of :data:`LEVEL_SQL`."""
    obj = row_to_json(row, level)
    if level is Level.PATIENT:
        return PatientRef.from_json(obj)
    if level is Level.STUDY:
        return StudyRef.from_json(obj)
    if level is Level.SERIES:
        return SeriesRef.from_json(obj)
    return InstanceRef.from_json(obj)


#: The instances' cached headers (``where`` filled in), in series and instance order.
HEADER_ROWS = (
    "SELECT i.sop_uid, i.path, i.header_json FROM instances i JOIN series se"
    " ON se.series_uid = i.series_uid WHERE {where}"
    " ORDER BY se.series_number, i.instance_number"
)
#: Stores headers made on first request: ``(header_json, sop_uid)`` rows.
CACHE_HEADER = "UPDATE instances SET header_json = ? WHERE sop_uid = ?"


def first_row(conn: sqlite3.Connection, column: str, uid: str) -> sqlite3.Row | None:
    """The header row of the first instance whose ``column`` is ``uid`` (None: none)."""
    row: sqlite3.Row | None = conn.execute(
        HEADER_ROWS.format(where=f"{column} = ?") + " LIMIT 1", (uid,)
    ).fetchone()
    return row
