"""DICOM attribute matching (PS3.4 C.2.2.2) translated to SQL for the local index.

Supported: universal (empty), single value, wildcards ``*`` and ``?``
(case-insensitive, as most PACS do for names; a person name matches when its
alphabetic, ideographic or phonetic group does), UID lists (``\\``-separated), date
and time ranges (``A-B``, ``-B``, ``A-``), and fuzzy person-name matching
(substring of any name component).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dicomstation.errors import DatabaseError
from dicomstation.models import Level

__all__ = ["COLUMNS", "Condition", "conditions"]

# keyword -> (level that owns it, SQL column, kind)
COLUMNS: dict[str, tuple[Level, str, str]] = {
    "PatientID": (Level.PATIENT, "p.patient_id", "text"),
    "PatientName": (Level.PATIENT, "p.patient_name", "pn"),
    "PatientBirthDate": (Level.PATIENT, "p.birth_date", "date"),
    "PatientSex": (Level.PATIENT, "p.sex", "text"),
    "StudyInstanceUID": (Level.STUDY, "st.study_uid", "uid"),
    "StudyDate": (Level.STUDY, "st.study_date", "date"),
    "StudyTime": (Level.STUDY, "st.study_time", "time"),
    "AccessionNumber": (Level.STUDY, "st.accession_number", "text"),
    "StudyDescription": (Level.STUDY, "st.description", "text"),
    "ReferringPhysicianName": (Level.STUDY, "st.referring_physician", "pn"),
    "StudyID": (Level.STUDY, "st.study_id", "text"),
    "ModalitiesInStudy": (Level.STUDY, "modality", "modalities"),
    "SeriesInstanceUID": (Level.SERIES, "se.series_uid", "uid"),
    "Modality": (Level.SERIES, "se.modality", "text"),
    "SeriesNumber": (Level.SERIES, "se.series_number", "int"),
    "SeriesDescription": (Level.SERIES, "se.description", "text"),
    "BodyPartExamined": (Level.SERIES, "se.body_part", "text"),
    "SOPInstanceUID": (Level.IMAGE, "i.sop_uid", "uid"),
    "SOPClassUID": (Level.IMAGE, "i.sop_class_uid", "uid"),
    "InstanceNumber": (Level.IMAGE, "i.instance_number", "int"),
}
_DEPTH = {Level.PATIENT: 0, Level.STUDY: 1, Level.SERIES: 2, Level.IMAGE: 3}


@dataclass(frozen=True)
class Condition:
    """One SQL condition with its parameters."""

    sql: str
    params: tuple[object, ...]


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _range(column: str, value: str) -> Condition:
    low, _, high = (part.strip() for part in value.partition("-"))
    if low and high:
        return Condition(f"{column} BETWEEN ? AND ?", (low, high + "\uffff"))
    if low:
        return Condition(f"{column} >= ?", (low,))
    return Condition(f"{column} <> '' AND {column} <= ?", (high + "\uffff",))


def _before(expr: str) -> str:
    """SQL: ``expr`` up to its first ``=`` (all of it when there is none)."""
    return (
        f"(CASE WHEN instr({expr}, '=') > 0"
        f" THEN substr({expr}, 1, instr({expr}, '=') - 1) ELSE {expr} END)"
    )


def _groups(column: str) -> tuple[str, str, str]:
    """SQL for the three groups of a stored person name ``A=I=P`` (missing ones empty)."""
    rest = f"substr({column}, instr({column}, '=') + 1)"
    third = f"(CASE WHEN instr({rest}, '=') > 0 THEN substr({rest}, instr({rest}, '=') + 1)"
    return _before(column), _before(rest), third + " ELSE '' END)"


def _person_name(column: str, value: str) -> Condition:
    """A person name matches when any of its groups (alphabetic, ideographic, phonetic) does."""
    pattern = _like(value)
    first, second, third = _groups(column)
    sql = (
        f"({first} LIKE ? ESCAPE '\\' OR (instr({column}, '=') > 0"
        f" AND ({second} LIKE ? ESCAPE '\\' OR {third} LIKE ? ESCAPE '\\')))"
    )
    return Condition(sql, (pattern, pattern, pattern))


def _one(column: str, kind: str, value: str, fuzzy: bool) -> Condition:
    if kind == "modalities":
        parts = tuple(v for v in value.split("\\") if v)
        marks = ",".join("?" * len(parts))
        return Condition(
            "EXISTS (SELECT 1 FROM series ms WHERE ms.study_uid = st.study_uid"
            f" AND ms.modality IN ({marks}))",
            parts,
        )
    if kind == "uid" or "\\" in value:
        parts = tuple(v.strip() for v in value.split("\\") if v.strip())
        return Condition(f"{column} IN ({','.join('?' * len(parts))})", parts)
    if kind in ("date", "time") and "-" in value:
        return _range(column, value)
    if kind == "int":
        try:
            return Condition(f"{column} = ?", (int(value),))
        except ValueError:
            raise DatabaseError(f"{value!r} is not an integer") from None
    if kind == "pn" and fuzzy:
        return Condition(f"{column} LIKE ? ESCAPE '\\'", (f"%{_like(value.strip('*'))}%",))
    if kind == "pn":
        return _person_name(column, value)
    if "*" in value or "?" in value:
        return Condition(f"{column} LIKE ? ESCAPE '\\'", (_like(value),))
    return Condition(f"{column} = ?", (value,))


def conditions(level: Level, filters: Mapping[str, str], fuzzy: bool = False) -> list[Condition]:
    """Translate keyword filters to SQL conditions for a query at ``level``.

    Raises
    ------
    DatabaseError
        For a keyword the local index cannot match, or one below the query level.
    """
    found = []
    for keyword, raw in filters.items():
        value = "" if raw is None else str(raw)
        if value in ("", "*"):
            continue
        if keyword not in COLUMNS:
            raise DatabaseError(f"the local database cannot match on {keyword!r}")
        owner, column, kind = COLUMNS[keyword]
        if _DEPTH[owner] > _DEPTH[level]:
            raise DatabaseError(f"{keyword} cannot be matched at {level.value} level")
        found.append(_one(column, kind, value, fuzzy))
    return found
