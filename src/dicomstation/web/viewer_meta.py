"""The DICOM data dictionary for the UI's metadata panel (names and keywords by tag).

The metadata panel shows DICOM JSON, which carries tags and VRs only; the names
come from pydicom's dictionary, sent once (about 5,000 entries) and cached by the
browser for the page's life. Repeating-group entries (``60xx`` overlays, ``50xx``
curves) are given with ``x`` in place of the varying digits, as pydicom keeps them.
"""

from __future__ import annotations

from functools import lru_cache

from fastapi import APIRouter
from pydicom._dicom_dict import DicomDictionary, RepeatersDictionary

__all__ = ["dictionary", "meta_router"]


@lru_cache(maxsize=1)
def dictionary() -> dict[str, list[str]]:
    """``{"GGGGEEEE": [keyword, name, vr]}`` for every public and repeating-group attribute."""
    out: dict[str, list[str]] = {}
    for tag, (vr, _vm, name, _retired, keyword) in DicomDictionary.items():
        out[f"{tag:08X}"] = [keyword, name, vr]
    for mask, (vr, _vm, name, _retired, keyword) in RepeatersDictionary.items():
        out[mask.upper()] = [keyword, name, vr]
    return out


def meta_router() -> APIRouter:
    """``GET /api/dictionary``: the data dictionary as JSON."""
    router = APIRouter()

    @router.get("/dictionary")
    def get_dictionary() -> dict[str, list[str]]:
        return dictionary()

    return router
