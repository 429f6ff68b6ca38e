"""Named segment terms: SNOMED CT category and type pairs (DICOM CID 7150 / 7151)."""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from dicomstation.errors import ExportError

__all__ = ["TERMS", "Term", "term"]


@dataclass(frozen=True)
class Term:
    """A segmented property category and type."""

    category: Code
    property_type: Code


_ANATOMY = codes.SCT.AnatomicalStructure
_ABNORMAL = codes.SCT.MorphologicallyAbnormalStructure

TERMS: dict[str, Term] = {
    "tissue": Term(codes.SCT.Tissue, codes.SCT.Tissue),
    "bone": Term(codes.SCT.Tissue, codes.SCT.Bone),
    "liver": Term(_ANATOMY, codes.SCT.Liver),
    "spleen": Term(_ANATOMY, codes.SCT.Spleen),
    "kidney": Term(_ANATOMY, codes.SCT.Kidney),
    "lung": Term(_ANATOMY, codes.SCT.Lung),
    "organ": Term(_ANATOMY, codes.SCT.Organ),
    "lesion": Term(_ABNORMAL, codes.SCT.Lesion),
    "tumor": Term(_ABNORMAL, codes.SCT.Tumor),
}


def term(name: str) -> Term:
    """Look up a term by name (case-insensitive); raise ExportError listing the known ones."""
    try:
        return TERMS[name.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(TERMS))
        raise ExportError(f"unknown segment term {name!r}; known terms: {known}") from None
