"""Frozen values that travel through the flow: queries, refs, progress, reports.

Every node (DICOMweb, DIMSE, the local database) speaks in these types, so the
CLI, the web UI and the transfer code never care which protocol a server uses.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dicomstation.dicomjson import first_value, values

__all__ = [
    "InstanceRef",
    "Level",
    "PatientRef",
    "Phase",
    "ProgressEvent",
    "Query",
    "SeriesRef",
    "StudyRef",
    "TransferReport",
]


class Level(enum.StrEnum):
    """Query/Retrieve level, named as in the standard (QueryRetrieveLevel)."""

    PATIENT = "PATIENT"
    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"

    @classmethod
    def parse(cls, value: str | Level) -> Level:
        """Normalise ``"study"``, ``"instance"``, ``Level.STUDY``... to a Level."""
        if isinstance(value, Level):
            return value
        text = value.strip().upper()
        aliases = {
            "STUDIES": "STUDY",
            "INSTANCE": "IMAGE",
            "INSTANCES": "IMAGE",
            "PATIENTS": "PATIENT",
            "IMAGES": "IMAGE",
        }
        try:
            return cls(aliases.get(text, text))
        except ValueError:
            raise ValueError(f"unknown level {value!r}: use study, series or instance") from None


@dataclass(frozen=True)
class Query:
    """A protocol-neutral query.

    Parameters
    ----------
    level : Level
        What to list: studies, series or instances (patients for DIMSE).
    filters : Mapping[str, str]
        DICOM keyword -> matching value (``"PatientName": "DOE^*"``,
        ``"StudyDate": "20200101-20201231"``, UID lists separated by ``\\``).
    study_uid, series_uid : str or None
        Parents, for series and instance queries.
    include_fields : tuple of str
        Extra attributes to return (``("all",)`` for everything the server has).
    fuzzy : bool
        Fuzzy matching of person names, where the server supports it.
    limit, offset : int or None, int
        Paging; ``limit=None`` returns everything (nodes page lazily).
    """

    level: Level = Level.STUDY
    filters: Mapping[str, str] = field(default_factory=dict)
    study_uid: str | None = None
    series_uid: str | None = None
    include_fields: tuple[str, ...] = ()
    fuzzy: bool = False
    limit: int | None = None
    offset: int = 0


def _int(obj: Mapping[str, Any], keyword: str) -> int | None:
    text = first_value(obj, keyword)
    try:
        return int(float(text)) if text else None
    except ValueError:
        return None


@dataclass(frozen=True)
class PatientRef:
    """A patient as listed by a node."""

    patient_id: str
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    json: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> PatientRef:
        """Build from a DICOM JSON object."""
        return cls(
            patient_id=first_value(obj, "PatientID"),
            patient_name=first_value(obj, "PatientName"),
            birth_date=first_value(obj, "PatientBirthDate"),
            sex=first_value(obj, "PatientSex"),
            json=obj,
        )


@dataclass(frozen=True)
class StudyRef:
    """A study as listed by a node; ``json`` keeps the full DICOM JSON answer."""

    study_uid: str
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    study_time: str = ""
    accession_number: str = ""
    description: str = ""
    modalities: tuple[str, ...] = ()
    num_series: int | None = None
    num_instances: int | None = None
    json: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> StudyRef:
        """Build from a DICOM JSON object (a QIDO-RS result or a header)."""
        return cls(
            study_uid=first_value(obj, "StudyInstanceUID"),
            patient_id=first_value(obj, "PatientID"),
            patient_name=first_value(obj, "PatientName"),
            study_date=first_value(obj, "StudyDate"),
            study_time=first_value(obj, "StudyTime"),
            accession_number=first_value(obj, "AccessionNumber"),
            description=first_value(obj, "StudyDescription"),
            modalities=tuple(str(v) for v in values(obj, "ModalitiesInStudy")),
            num_series=_int(obj, "NumberOfStudyRelatedSeries"),
            num_instances=_int(obj, "NumberOfStudyRelatedInstances"),
            json=obj,
        )


@dataclass(frozen=True)
class SeriesRef:
    """A series as listed by a node."""

    series_uid: str
    study_uid: str = ""
    modality: str = ""
    series_number: int | None = None
    description: str = ""
    num_instances: int | None = None
    json: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> SeriesRef:
        """Build from a DICOM JSON object."""
        return cls(
            series_uid=first_value(obj, "SeriesInstanceUID"),
            study_uid=first_value(obj, "StudyInstanceUID"),
            modality=first_value(obj, "Modality"),
            series_number=_int(obj, "SeriesNumber"),
            description=first_value(obj, "SeriesDescription"),
            num_instances=_int(obj, "NumberOfSeriesRelatedInstances"),
            json=obj,
        )


@dataclass(frozen=True)
class InstanceRef:
    """An instance as listed by a node."""

    sop_instance_uid: str
    sop_class_uid: str = ""
    series_uid: str = ""
    study_uid: str = ""
    instance_number: int | None = None
    number_of_frames: int | None = None
    json: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> InstanceRef:
        """Build from a DICOM JSON object."""
        return cls(
            sop_instance_uid=first_value(obj, "SOPInstanceUID"),
            sop_class_uid=first_value(obj, "SOPClassUID"),
            series_uid=first_value(obj, "SeriesInstanceUID"),
            study_uid=first_value(obj, "StudyInstanceUID"),
            instance_number=_int(obj, "InstanceNumber"),
            number_of_frames=_int(obj, "NumberOfFrames"),
            json=obj,
        )


class Phase(enum.StrEnum):
    """Where a long operation is."""

    STARTED = "started"
    PROGRESS = "progress"
    SKIPPED = "skipped"
    FAILED = "failed"
    DONE = "done"


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a long operation (import, fetch, send), for bars and live UIs.

    ``done``/``total`` count instances (``total`` may be None when unknown);
    ``bytes_done`` counts payload bytes so consumers can show MB and MB/s.
    """

    operation: str
    phase: Phase
    done: int = 0
    total: int | None = None
    bytes_done: int = 0
    uid: str | None = None
    message: str = ""


@dataclass(frozen=True)
class TransferReport:
    """What an import, fetch or send did, instance by instance."""

    operation: str
    succeeded: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)
    warnings: Mapping[str, str] = field(default_factory=dict)
    bytes_transferred: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failed

    def merged(self, other: TransferReport) -> TransferReport:
        """This report followed by ``other`` (one operation, its counts and times added)."""
        return TransferReport(
            self.operation,
            self.succeeded + other.succeeded,
            self.skipped + other.skipped,
            {**self.failed, **other.failed},
            {**self.warnings, **other.warnings},
            self.bytes_transferred + other.bytes_transferred,
            self.seconds + other.seconds,
        )
