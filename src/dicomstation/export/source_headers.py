"""Source headers made fit for export: identity checked, defects fixed, orientations snapped.

Exporters copy patient, study and equipment attributes from the source images and
highdicom reads their geometry; source headers from real scanners and de-identifiers
carry defects that would stop highdicom or be copied into the new records.
:class:`~dicomstation.export.common.SourceSeries` runs every source header through
:func:`require_identity`, :func:`sanitized` and :func:`snap_orientations`.
"""

from __future__ import annotations

from collections.abc import Sequence
from copy import deepcopy
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from dicomstation.errors import ExportError
from dicomstation.export.iod import drop_invalid_empty

__all__ = [
    "ORIENTATION_TOLERANCE",
    "TYPE2_PATIENT_STUDY",
    "fill_type2",
    "require_identity",
    "sanitized",
    "snap_orientations",
]

_IDENTITY = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")

#: Type 2 attributes of the Patient and General Study modules that highdicom reads from
#: a source image directly (an AttributeError when absent).
TYPE2_PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


def require_identity(ds: Dataset, where: Path | str) -> None:
    """Raise ExportError (naming the series and ``where``) when a Type 1 identity UID is absent."""
    missing = [keyword for keyword in _IDENTITY if not ds.get(keyword)]
    if missing:
        series = ds.get("SeriesInstanceUID") or "?"
        raise ExportError(
            f"series {series}: {where} has no {', '.join(missing)}; cannot export from it"
        )


def fill_type2(ds: Dataset) -> None:
    """Give ``ds`` every absent :data:`TYPE2_PATIENT_STUDY` attribute, empty (Type 2 semantics).

    De-identified data and some scanners leave them out; the exported objects then
    carry them present and empty, as their IODs require. Present values are kept.
    """
    for keyword in TYPE2_PATIENT_STUDY:
        if keyword not in ds:
            setattr(ds, keyword, "")


def sanitized(ds: Dataset, *, copy: bool) -> Dataset:
    """Fix source header defects that stop highdicom or would be copied into new records.

    - an empty Specific Character Set (the default repertoire) is removed;
    - absent Type 2 patient and study attributes are added empty (:func:`fill_type2`);
    - empty values the IOD does not allow (an empty type 3 sequence...) are removed;
    - a multi-frame image with Pixel Measures / Plane Orientation only per frame
      gets them in its Shared Functional Groups (what highdicom reads).

    ``copy`` works on a deep copy (for caller-owned datasets).
    """
    if copy:
        ds = deepcopy(ds)
    if "SpecificCharacterSet" in ds and not ds.SpecificCharacterSet:
        del ds.SpecificCharacterSet
    elif "SpecificCharacterSet" in ds:
        _normalise_character_set(ds)
    drop_invalid_empty(ds)
    fill_type2(ds)
    if "PerFrameFunctionalGroupsSequence" in ds and "SharedFunctionalGroupsSequence" in ds:
        shared = ds.SharedFunctionalGroupsSequence[0]
        first = ds.PerFrameFunctionalGroupsSequence[0]
        for keyword in ("PixelMeasuresSequence", "PlaneOrientationSequence"):
            if keyword not in shared and keyword in first:
                setattr(shared, keyword, deepcopy(first[keyword].value))
    return ds


def _normalise_character_set(ds: Dataset) -> None:
    """Spell the character set so highdicom accepts it; re-encode as UTF-8 when it cannot.

    An empty first value of ISO 2022 code extensions means the default repertoire
    (``ISO 2022 IR 6``). A defined term highdicom does not know (Korean
    ``ISO 2022 IR 149``) makes the dataset UTF-8 (``ISO_IR 192``): the text is
    decoded with the old character set first, so no character is lost.
    """
    value = ds.SpecificCharacterSet
    values = [value] if isinstance(value, str) else [str(v) for v in value]
    if len(values) > 1:
        values = [v or "ISO 2022 IR 6" for v in values]
    known = {v.value for v in hd.enum.SpecificCharacterSetValues}
    if all(v in known for v in values):
        ds.SpecificCharacterSet = values if len(values) > 1 else values[0]
        return
    for element in ds.iterall():  # decode every text value with the source's character set
        _ = element.value
    ds.SpecificCharacterSet = "ISO_IR 192"


#: Direction cosines that differ by less than this are one orientation (the loader's tolerance).
ORIENTATION_TOLERANCE = 1e-4


def snap_orientations(datasets: Sequence[Dataset]) -> list[Dataset]:
    """Give every dataset the first one's orientation strings when they agree within 1e-4.

    Scanners round direction cosines differently from slice to slice (``0.00387589``
    against ``0.0038759``); the loader accepts that, but highdicom compares the
    strings exactly. Differences above the tolerance are left alone (the loader
    warns about mixed orientations). Enhanced multi-frame frames are snapped too.
    Works in place; returns ``datasets`` as a list.
    """
    reference = None
    for ds in datasets:
        for holder in _orientation_holders(ds):
            value = holder.get("ImageOrientationPatient")
            if value is None or len(value) != 6:
                continue
            if reference is None:
                reference = value
            elif value != reference and _close(value, reference):
                holder.ImageOrientationPatient = deepcopy(reference)
    return list(datasets)


def _orientation_holders(ds: Dataset) -> list[Dataset]:
    holders = [ds]
    for keyword in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for group in ds.get(keyword, []):
            holders.extend(group.get("PlaneOrientationSequence", []))
    return holders


def _close(a: Sequence[object], b: Sequence[object]) -> bool:
    try:
        x = np.asarray([float(str(v)) for v in a])
        y = np.asarray([float(str(v)) for v in b])
    except ValueError:
        return False
    return bool(np.max(np.abs(x - y)) <= ORIENTATION_TOLERANCE)
