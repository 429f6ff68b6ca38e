"""Search Workitems matching (PS3.18 §11.9, the QIDO-RS rules of PS3.4 C.2.2.2).

Keys are keywords or tags, with ``.`` for one level of sequence
(``ScheduledWorkitemCodeSequence.CodeValue=...``, ``00404018.00080100=...``).
Matching: single value (exact; ``*`` and ``?`` wildcards), UID lists
(``a,b``) for UI, ranges (``a-b``) for DA, TM and DT. ``includefield``,
``limit`` (at most 1000) and ``offset`` as in QIDO-RS.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_VR

from dicomstation.dicomjson import tag_hex
from dicomstation.server.ups_store import STATE, UpsError

__all__ = ["Search", "matches", "parse_search"]

MAX_LIMIT = 1000
_RESERVED = {"limit", "offset", "includefield", "fuzzymatching", "token"}


@dataclass(frozen=True)
class Search:
    """A parsed search: conditions (tag path, value), paging and fields to include."""

    conditions: tuple[tuple[tuple[str, ...], str], ...]
    limit: int = 100
    offset: int = 0
    include_all: bool = True
    include: tuple[str, ...] = ()

    @property
    def state(self) -> str | None:
        """The Procedure Step State asked for (the store filters on it)."""
        for path, value in self.conditions:
            if path == (STATE,) and "*" not in value and "?" not in value:
                return value
        return None

    def project(self, dataset: dict[str, Any]) -> dict[str, Any]:
        """The dataset as answered (every attribute: a workitem is small)."""
        return dataset


def _path(key: str) -> tuple[str, ...]:
    try:
        return tuple(tag_hex(part) for part in key.split("."))
    except KeyError:
        raise UpsError(400, f"search key {key!r} is not a DICOM keyword or tag") from None


def _int(name: str, raw: str, low: int, high: int) -> int:
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise UpsError(400, f"{name}={raw!r} must be a whole number from {low} to {high}")
    return int(raw)


def parse_search(params: Iterable[tuple[str, str]]) -> Search:
    """Parse the query parameters of Search Workitems (400 for unknown keys)."""
    conditions: list[tuple[tuple[str, ...], str]] = []
    limit, offset = 100, 0
    include: list[str] = []
    for key, value in params:
        if key == "limit":
            limit = _int("limit", value, 1, MAX_LIMIT)
        elif key == "offset":
            offset = _int("offset", value, 0, 10**9)
        elif key == "includefield":
            include += [v for v in value.split(",") if v]
        elif key not in _RESERVED:
            conditions.append((_path(key), value))
    return Search(tuple(conditions), limit, offset, True, tuple(include))


def _vr(tag: str) -> str:
    try:
        return str(dictionary_VR(int(tag, 16)))
    except KeyError:
        return "UN"


def _text(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(value.get("Alphabetic", ""))
    return str(value)


def _value_matches(tag: str, values: list[Any], wanted: str) -> bool:
    vr = _vr(tag)
    texts = [_text(v) for v in values]
    if vr == "UI" and "," in wanted:
        return any(t in wanted.split(",") for t in texts)
    if vr in ("DA", "TM", "DT") and "-" in wanted:
        low, _, high = wanted.partition("-")
        return any((not low or t >= low) and (not high or t[: len(high)] <= high) for t in texts)
    if "*" in wanted or "?" in wanted:
        return any(fnmatch.fnmatchcase(t, wanted) for t in texts)
    return wanted in texts


def _match_path(dataset: Mapping[str, Any], path: tuple[str, ...], wanted: str) -> bool:
    element = dataset.get(path[0])
    if not wanted:
        return True  # universal matching: the key only asks for the attribute
    if not element or not element.get("Value"):
        return False
    if len(path) == 1:
        return _value_matches(path[0], list(element["Value"]), wanted)
    return any(
        isinstance(item, Mapping) and _match_path(item, path[1:], wanted)
        for item in element["Value"]
    )


def matches(dataset: Mapping[str, Any], search: Search) -> bool:
    """Whether ``dataset`` meets every condition of ``search``."""
    return all(_match_path(dataset, path, wanted) for path, wanted in search.conditions)
