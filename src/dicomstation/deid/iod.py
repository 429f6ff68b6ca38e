"""Attribute types per IOD, to narrow compound action codes as the standard says.

Table E.1-1's compound codes depend on the IOD: ``X/Z`` is "X unless Z is required to keep
the IOD conformant (Type 2)", ``X/D`` "X unless D is required (Type 1)", and so on. The types
come from the module tables highdicom ships as data (``highdicom/_standard/*.json``, generated
from the standard by highdicom's maintainers); they are read as data files, highdicom's code is
not called. Where a type is unknown (a SOP class highdicom does not list, an attribute nested in
a functional group macro) :func:`narrow` keeps the attribute (Z or D), which is conformant
whatever the type.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from dicomstation.deid.table import Action

__all__ = ["attribute_types", "narrow"]

_STRICTNESS = {"1": 0, "1C": 1, "2": 2, "2C": 3, "3": 4}
_SINGLE = {
    "D": Action.DUMMY,
    "Z": Action.ZERO,
    "X": Action.REMOVE,
    "K": Action.KEEP,
    "C": Action.CLEAN,
    "U": Action.UID,
}
#: When the type is unknown: keep the attribute with the least information the code allows.
_UNKNOWN = {
    "X/Z": Action.ZERO,
    "X/D": Action.DUMMY,
    "Z/D": Action.DUMMY,
    "X/Z/D": Action.DUMMY,
}


def _load(name: str) -> Any:
    text = resources.files("highdicom").joinpath("_standard", name).read_text(encoding="utf-8")
    return json.loads(text)


@cache
def _maps() -> tuple[dict[str, str], dict[str, list[Any]], dict[str, list[Any]]]:
    try:
        return (
            _load("sop_class_iod_map.json"),
            _load("iod_module_map.json"),
            _load("module_attribute_map.json"),
        )
    except (OSError, ValueError):  # highdicom moved its data: every type is unknown
        return {}, {}, {}


@cache
def attribute_types(sop_class_uid: str) -> dict[tuple[str, ...], str] | None:
    """``keyword path -> strictest type`` over the IOD's modules, or None for an unknown IOD.

    A path is the keywords from the top level down (``("ReferencedStudySequence",)``,
    ``("ReferencedStudySequence", "ReferencedSOPInstanceUID")``).
    """
    sop_iod, iod_modules, module_attributes = _maps()
    iod = sop_iod.get(sop_class_uid)
    if iod is None or iod not in iod_modules:
        return None
    types: dict[tuple[str, ...], str] = {}
    for module in iod_modules[iod]:
        for attribute in module_attributes.get(module["key"], []):
            path = (*attribute["path"], attribute["keyword"])
            kind = str(attribute["type"])
            old = types.get(path)
            if old is None or _STRICTNESS.get(kind, 4) < _STRICTNESS.get(old, 4):
                types[path] = kind
    return types


def narrow(code: str, path: tuple[str, ...], types: dict[tuple[str, ...], str] | None) -> Action:
    """The single action for ``code`` at ``path`` in an IOD with attribute ``types``.

    Parameters
    ----------
    code : str
        A Table E.1-1 code, verbatim (``X/Z/D``...).
    path : tuple of str
        Keywords from the top level to the attribute.
    types : dict or None
        From :func:`attribute_types`.

    Returns
    -------
    Action
        ``X/Z/U*`` always gives U: the sequence is kept and every UID inside is replaced, so
        references still resolve inside the de-identified set.
    """
    if "/" not in code:
        return _SINGLE[code]
    if code == "X/Z/U*":
        return Action.UID
    kind = types.get(path) if types is not None else None
    if kind is None:
        if types is not None and len(path) == 1:
            return Action.REMOVE  # a top-level attribute that is not in this IOD
        return _UNKNOWN[code]
    alternatives = code.split("/")
    if kind in ("1", "1C"):
        return Action.DUMMY if "D" in alternatives else Action.ZERO
    if kind in ("2", "2C"):
        return Action.ZERO if "Z" in alternatives else Action.DUMMY
    return Action.REMOVE
