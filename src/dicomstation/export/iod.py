"""Inherit from a source instance exactly what the standard defines for an IOD.

A derived image copies patient, study, series and modality attributes from its
source. Real sources carry defects (private data, attributes of other IODs,
empty type 1/3 values, missing type 2 values) that must not be copied into a
new record. The module tables come from the DICOM standard as distributed
with highdicom (``highdicom/_standard/*.json``, read as package data).
"""

from __future__ import annotations

import json
import pkgutil
from collections.abc import Callable
from copy import deepcopy
from functools import lru_cache
from importlib import metadata
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

from dicomstation.errors import ExportError

__all__ = [
    "apply_conditions",
    "conform",
    "drop_invalid_empty",
    "fix_laterality",
    "inherit_body_part",
    "iod_attributes",
    "strip_private",
]

# Attribute types whose empty value is a violation (type 1, 1C and optional 3).
_NOT_EMPTY = {"1", "1C", "3"}
_STRICTNESS = ["1", "1C", "2", "2C", "3"]
_MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
_CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
_PALETTE = tuple(
    f"{colour}PaletteColorLookupTable{part}"
    for colour in ("Red", "Green", "Blue")
    for part in ("Descriptor", "Data")
) + tuple(f"Segmented{c}PaletteColorLookupTableData" for c in ("Red", "Green", "Blue"))
_TEXT_VRS = {
    "AE",
    "AS",
    "CS",
    "DA",
    "DS",
    "DT",
    "IS",
    "LO",
    "LT",
    "PN",
    "SH",
    "ST",
    "TM",
    "UC",
    "UT",
}


def _values(ds: Dataset, keyword: str) -> set[str]:
    value = ds.get(keyword)
    if value is None or value == "":
        return set()
    return {str(v).upper() for v in value} if not isinstance(value, str) else {value.upper()}


def _mr(ds: Dataset) -> bool:
    return str(ds.get("SOPClassUID", "")) == _MR_IMAGE


#: Conditional (1C/2C) attributes a source may carry when their condition is not met;
#: keyword -> the condition, evaluated on the *new* dataset (PS3.3 module tables, as
#: dciodvfy checks them). An attribute whose condition is false is removed.
_CONDITIONS: dict[str, Callable[[Dataset], bool]] = {
    # MR Image module (C.8.3.1)
    "InversionTime": lambda ds: not _mr(ds) or "IR" in _values(ds, "ScanningSequence"),
    "TriggerTime": lambda ds: not _mr(ds) or bool(_values(ds, "ScanOptions") & {"CG", "PPG"}),
    # Image Pixel module: palettes only describe PALETTE COLOR pixels
    **{
        keyword: (lambda ds: ds.get("PhotometricInterpretation") == "PALETTE COLOR")
        for keyword in _PALETTE
    },
    "PlanarConfiguration": lambda ds: int(ds.get("SamplesPerPixel", 1) or 1) > 1,
    "PixelPaddingRangeLimit": lambda ds: "PixelPaddingValue" in ds,
}


_HIGHDICOM_TABLES_VERSION = "0.28."


@lru_cache(1)
def _tables() -> tuple[dict[str, str], dict[str, list[dict[str, str]]], dict[str, list[Any]]]:
    """The standard's tables: highdicom's own cached copies when it has them (read once).

    The attribute table is large (a second parsed copy cost each worker about half a
    second and tens of MiB); older or newer highdicom versions without these loaders
    get the package data parsed here.
    """
    # highdicom has no public accessor for its tables: its private ``_standard_utils`` loaders
    # (cached, so the tables are parsed once per process for highdicom and us) are used only
    # on the pinned minor version (pyproject: highdicom 0.28.*); any other version gets the
    # package data parsed here.
    if metadata.version("highdicom").startswith(_HIGHDICOM_TABLES_VERSION):
        from highdicom import _standard_utils as standard

        return (
            standard.get_sop_class_iod_map(),
            standard.get_iod_module_map(),
            standard.get_module_attribute_map(),
        )

    def load(name: str) -> Any:
        data = pkgutil.get_data("highdicom", f"_standard/{name}.json")
        if data is None:  # pragma: no cover - highdicom always ships these
            raise ExportError(f"highdicom is missing its standard table {name}")
        return json.loads(data.decode("utf-8"))

    return load("sop_class_iod_map"), load("iod_module_map"), load("module_attribute_map")


@lru_cache(32)
def iod_attributes(sop_class_uid: str) -> dict[str, tuple[str, bool]]:
    """Top-level attributes of the IOD of a SOP class: keyword -> (type, module mandatory)."""
    sop_iod, iod_modules, module_attributes = _tables()
    iod = sop_iod.get(str(sop_class_uid))
    if iod is None:
        raise ExportError(f"SOP Class {sop_class_uid} is not in the standard's IOD tables")
    out: dict[str, tuple[str, bool]] = {}
    for module in iod_modules[iod]:
        mandatory = module["usage"] == "M"
        for attribute in module_attributes.get(module["key"], []):
            if attribute["path"]:
                continue
            keyword, kind = attribute["keyword"], attribute["type"]
            known = out.get(keyword)
            if known is not None:  # in several modules: the strictest type applies
                kind = min(kind, known[0], key=_STRICTNESS.index)
                mandatory = mandatory or known[1]
            out[keyword] = (kind, mandatory)
    return out


def _empty(value: Any) -> bool:
    return value is None or value == "" or (hasattr(value, "__len__") and len(value) == 0)


def conform(source: Dataset, sop_class_uid: str) -> Dataset:
    """A copy of ``source`` holding only what the IOD of ``sop_class_uid`` defines.

    Drops private and foreign attributes and empty values the standard does not
    allow, adds missing type 2 attributes of mandatory modules (empty), and
    applies the Laterality condition (present when no unpaired body part is named).
    """
    allowed = iod_attributes(sop_class_uid)
    out = Dataset()
    for element in source:
        keyword = element.keyword
        if element.tag.is_private or keyword not in allowed:
            continue
        kind, _ = allowed[keyword]
        if kind in _NOT_EMPTY and _empty(element.value):
            continue
        out.add(_standard_vr(deepcopy(element)))
    strip_private(out)
    for keyword, (kind, mandatory) in allowed.items():
        if kind == "2" and mandatory and keyword not in out and keyword != "PixelData":
            out.add_new(tag_for_keyword(keyword), dictionary_VR(keyword), None)  # type: ignore[arg-type]
    if "Laterality" in allowed:
        fix_laterality(out)
    apply_conditions(out)
    return out


def apply_conditions(ds: Dataset) -> None:
    """Enforce the conditions of conditional attributes on a new dataset (in place).

    Removes conditional attributes copied from a source whose condition does not
    hold for ``ds`` (InversionTime without inversion recovery, TriggerTime without
    cardiac or pulse gating, palettes on a non-palette image...), adds the Type 2C
    Patient Position of CT and MR images (empty when unknown) and the
    De-identification Method a source claiming ``PatientIdentityRemoved`` lacks.
    Call it again after changing the attributes the conditions read.
    """
    for keyword, condition in _CONDITIONS.items():
        if keyword in ds and not condition(ds):
            del ds[keyword]
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class in (_MR_IMAGE, _CT_IMAGE) and "PatientPosition" not in ds:
        ds.add_new(tag_for_keyword("PatientPosition"), "CS", None)  # type: ignore[arg-type]
    if str(ds.get("PatientIdentityRemoved", "")).upper() == "YES" and not (
        "DeidentificationMethod" in ds or "DeidentificationMethodCodeSequence" in ds
    ):
        ds.DeidentificationMethod = "not recorded in the source images"


def strip_private(ds: Dataset) -> None:
    """Remove private elements at every depth, and code items missing their required parts."""
    ds.remove_private_tags()
    for element in list(ds):
        if element.VR != "SQ":
            continue
        items = [item for item in element.value if _complete_code(item)]
        for item in items:
            strip_private(item)
        if len(items) != len(element.value):
            element.value = items
        if not items and iod_type(ds, element.keyword) in _NOT_EMPTY:
            del ds[element.tag]


def iod_type(ds: Dataset, keyword: str) -> str:
    """Type of a top-level attribute in the IOD of ``ds`` ('' when unknown or nested)."""
    try:
        return iod_attributes(str(ds.get("SOPClassUID", "")))[keyword][0]
    except (ExportError, KeyError):
        return ""


def _complete_code(item: Dataset) -> bool:
    """False for a code item (Basic Code Sequence Macro) without a meaning or a value."""
    if not any(k in item for k in ("CodeValue", "CodingSchemeDesignator", "CodeMeaning")):
        return True
    has_value = bool(item.get("CodeValue") or item.get("LongCodeValue") or item.get("URNCodeValue"))
    return has_value and bool(item.get("CodeMeaning")) and bool(item.get("CodingSchemeDesignator"))


def _standard_vr(element: DataElement) -> DataElement:
    """The element with the VR the data dictionary gives, when a source wrote another text VR."""
    try:
        vr = dictionary_VR(element.tag)
    except KeyError:
        return element
    if vr == element.VR or vr not in _TEXT_VRS or element.VR not in _TEXT_VRS:
        return element
    return DataElement(element.tag, vr, element.value)


#: Body Part Examined values of unpaired structures (no laterality), as dciodvfy reads them.
UNPAIRED_BODY_PARTS = frozenset(
    [
        "ABDOMEN",
        "ABDOMENPELVIS",
        "AORTA",
        "BLADDER",
        "BRAIN",
        "CHEST",
        "CHESTABDOMEN",
        "CHESTABDPELVIS",
        "COCCYX",
        "COLON",
        "CSPINE",
        "CTSPINE",
        "ESOPHAGUS",
        "HEAD",
        "HEADNECK",
        "HEART",
        "LIVER",
        "LSPINE",
        "NECK",
        "PANCREAS",
        "PELVIS",
        "PROSTATE",
        "SKULL",
        "SPINE",
        "SPLEEN",
        "SSPINE",
        "STOMACH",
        "TLSPINE",
        "TSPINE",
        "UTERUS",
        "WHOLEBODY",
    ]
)


def fix_laterality(ds: Dataset) -> None:
    """Apply the Laterality (type 2C) condition as dciodvfy reads it.

    Laterality is required (empty when unknown) unless the body part examined is
    an unpaired structure or Image Laterality is present: an empty Laterality
    next to an unpaired body part is removed; otherwise an empty one is added.
    """
    body_part = str(ds.get("BodyPartExamined") or "").upper()
    if body_part in UNPAIRED_BODY_PARTS:
        if "Laterality" in ds and not ds.Laterality:
            del ds.Laterality
    elif "Laterality" not in ds and "ImageLaterality" not in ds:
        ds.add_new(tag_for_keyword("Laterality"), "CS", None)  # type: ignore[arg-type]


def inherit_body_part(target: Dataset, source: Dataset) -> None:
    """Copy Body Part Examined and Laterality from the source, then apply the condition."""
    for keyword in ("BodyPartExamined", "Laterality"):
        if keyword in source and keyword not in target:
            setattr(target, keyword, source.get(keyword))
    fix_laterality(target)


def drop_invalid_empty(ds: Dataset) -> None:
    """Remove top-level empty values that the IOD of ``ds`` does not allow (in place).

    Used on source headers so that writers which copy them (highdicom copies
    the patient and study modules) do not inherit the defect.
    """
    try:
        allowed = iod_attributes(str(ds.get("SOPClassUID", "")))
    except ExportError:
        return
    # elements() yields still-encoded values as they are: only the candidates get decoded
    candidates = [element.tag for element in ds.elements() if _maybe_empty(element)]
    for tag in candidates:
        kind = allowed.get(keyword_for_tag(tag), ("", False))[0]
        if kind in _NOT_EMPTY and _empty(ds[tag].value):
            del ds[tag]


def _maybe_empty(element: DataElement | RawDataElement) -> bool:
    """False when the still-encoded value holds more than padding (it cannot decode to empty).

    Saves decoding every value of every source header (the cheap test comes first:
    nearly every value holds something); anything else (decoded elements, padding
    only, values not read yet) is decided on the value.
    """
    value = element.value
    if isinstance(element, RawDataElement) and isinstance(value, bytes):
        return not value.strip(b" \x00")
    return True
