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
from copy import deepcopy
from functools import lru_cache
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

from dicomstation.errors import ExportError

__all__ = [
    "conform",
    "drop_invalid_empty",
    "fix_laterality",
    "inherit_body_part",
    "iod_attributes",
]

# Attribute types whose empty value is a violation (type 1, 1C and optional 3).
_NOT_EMPTY = {"1", "1C", "3"}
_STRICTNESS = ["1", "1C", "2", "2C", "3"]


@lru_cache(1)
def _tables() -> tuple[dict[str, str], dict[str, list[dict[str, str]]], dict[str, list[Any]]]:
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
        out.add(deepcopy(element))
    for keyword, (kind, mandatory) in allowed.items():
        if kind == "2" and mandatory and keyword not in out and keyword != "PixelData":
            out.add_new(tag_for_keyword(keyword), dictionary_VR(keyword), None)  # type: ignore[arg-type]
    if "Laterality" in allowed:
        fix_laterality(out)
    return out


def fix_laterality(ds: Dataset) -> None:
    """Apply the Laterality (type 2C) condition as dciodvfy reads it.

    An empty Laterality next to a named body part is removed (the body part is
    taken as unpaired); with no body part named, an empty Laterality is added.
    """
    if ds.get("BodyPartExamined") and "Laterality" in ds and not ds.Laterality:
        del ds.Laterality
    elif not ds.get("BodyPartExamined") and "Laterality" not in ds and "ImageLaterality" not in ds:
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
    for element in list(ds):
        kind = allowed.get(element.keyword, ("", False))[0]
        if kind in _NOT_EMPTY and _empty(element.value):
            del ds[element.tag]
