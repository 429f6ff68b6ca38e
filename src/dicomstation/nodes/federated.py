"""Federated query: one query on several servers at once, rows merged by UID.

Each server is asked concurrently (a bounded number at a time); the answers are
merged row by row on the UID of the level (StudyInstanceUID, SeriesInstanceUID,
SOPInstanceUID, PatientID), each attribute taken from the first server (in the
order given) that has a non-empty value, and every row says which servers hold
it. A server that fails (unreachable, refused credentials...) is listed in
:attr:`FederatedResult.failed` with a one-line reason; the others still answer.

Example
-------
>>> result = federated_find(["pacs", "archive"], Query(Level.STUDY), opener)  # doctest: +SKIP
>>> for row in result.rows:
...     print(row.uid, row.servers)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dicomstation.errors import DicomStationError, NotFoundError
from dicomstation.models import InstanceRef, Level, PatientRef, Query, SeriesRef, StudyRef
from dicomstation.nodes.base import DicomNode, Ref

__all__ = [
    "FederatedResult",
    "FederatedRow",
    "NodeOpener",
    "federated_find",
    "find_holders",
    "merge_refs",
    "pick_holder",
    "preference_order",
    "uid_of",
]

_R = TypeVar("_R", PatientRef, StudyRef, SeriesRef, InstanceRef)

#: Opens the node of a server name (the caller closes it; ``with`` is used here).
NodeOpener = Callable[[str], DicomNode]


def uid_of(ref: Ref) -> str:
    """The key a row is de-duplicated on: the UID of its level (PatientID for patients)."""
    if isinstance(ref, StudyRef):
        return ref.study_uid
    if isinstance(ref, SeriesRef):
        return ref.series_uid
    if isinstance(ref, InstanceRef):
        return ref.sop_instance_uid
    return ref.patient_id


def _empty(value: object) -> bool:
    if isinstance(value, Mapping):  # a DICOM JSON element
        return not (value.get("Value") or "BulkDataURI" in value or "InlineBinary" in value)
    return value is None or value == "" or value == ()


def _merged_json(first: Mapping[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(first)
    for tag, element in other.items():
        if tag not in merged or (_empty(merged[tag]) and not _empty(element)):
            merged[tag] = element
    return merged


def merge_refs(first: Ref, other: Ref) -> Ref:
    """``first`` with every empty attribute (and DICOM JSON element) filled from ``other``."""
    if type(first) is not type(other):
        return first
    changes: dict[str, Any] = {}
    for item in dataclasses.fields(first):
        mine, theirs = getattr(first, item.name), getattr(other, item.name)
        if item.name == "json":
            changes["json"] = _merged_json(mine, theirs)
        elif _empty(mine) and not _empty(theirs):
            changes[item.name] = theirs
    return dataclasses.replace(first, **changes)


@dataclass(frozen=True)
class FederatedRow:
    """One de-duplicated row: the merged ref and the servers that hold it (in asking order)."""

    ref: Ref
    servers: tuple[str, ...]

    @property
    def uid(self) -> str:
        """The UID the row was de-duplicated on (see :func:`uid_of`)."""
        return uid_of(self.ref)


@dataclass(frozen=True)
class FederatedResult:
    """What a federated query found, and which servers failed (name -> one-line reason)."""

    servers: tuple[str, ...]
    rows: tuple[FederatedRow, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)

    @property
    def refs(self) -> list[Ref]:
        """The merged refs, in row order."""
        return [row.ref for row in self.rows]

    @property
    def answered(self) -> tuple[str, ...]:
        """The servers that answered (in asking order)."""
        return tuple(name for name in self.servers if name not in self.failed)

    def of_type(self, kind: type[_R]) -> list[_R]:
        """The merged refs that are ``kind`` (``result.of_type(StudyRef)``), typed."""
        return [row.ref for row in self.rows if isinstance(row.ref, kind)]


def _ask(opener: NodeOpener, name: str, query: Query) -> list[Ref]:
    with opener(name) as node:
        return node.find(query)


def _gather(
    names: Sequence[str], query: Query, opener: NodeOpener, workers: int
) -> tuple[dict[str, list[Ref]], dict[str, str]]:
    """Every server's answer (or its one-line failure), asked ``workers`` at a time."""
    answers: dict[str, list[Ref]] = {}
    failed: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(names)))) as pool:
        futures = {name: pool.submit(_ask, opener, name, query) for name in names}
        for name, future in futures.items():
            try:
                answers[name] = future.result()
            except DicomStationError as exc:
                failed[name] = " ".join(str(exc).split()) or type(exc).__name__
    return answers, failed


def federated_find(
    names: Sequence[str], query: Query, opener: NodeOpener, *, workers: int = 4
) -> FederatedResult:
    """Run ``query`` on every server of ``names`` concurrently; merge the rows by UID.

    Parameters
    ----------
    names : sequence of str
        Servers to ask, in order of preference (attributes come from the first
        one that has them; rows keep the first server's order).
    query : Query
        The query, as for :meth:`DicomNode.find`.
    opener : callable
        ``name -> DicomNode`` (closed here after the query).
    workers : int
        Servers asked at once.

    Returns
    -------
    FederatedResult
        Merged rows with their servers; failed servers with their reason.
    """
    names = tuple(dict.fromkeys(names))
    answers, failed = _gather(names, query, opener, workers)
    merged: dict[str, Ref] = {}
    holders: dict[str, list[str]] = {}
    for name in names:
        for ref in answers.get(name, ()):
            key = uid_of(ref)
            merged[key] = merge_refs(merged[key], ref) if key in merged else ref
            holders.setdefault(key, [])
            if name not in holders[key]:
                holders[key].append(name)
    rows = tuple(FederatedRow(ref, tuple(holders[key])) for key, ref in merged.items())
    return FederatedResult(names, rows, failed)


def preference_order(names: Sequence[str], default: str = "") -> list[str]:
    """``names`` with the default server first, the others in their (settings) order."""
    ordered = [default] if default in names else []
    return ordered + [name for name in names if name != default]


def find_holders(
    names: Sequence[str], study_uid: str, opener: NodeOpener, *, workers: int = 4
) -> FederatedResult:
    """Ask every server whether it holds ``study_uid`` (a study-level query of that UID)."""
    query = Query(Level.STUDY, {"StudyInstanceUID": study_uid})
    result = federated_find(names, query, opener, workers=workers)
    rows = tuple(row for row in result.rows if row.uid == study_uid)
    return FederatedResult(result.servers, rows, result.failed)


def pick_holder(
    names: Sequence[str], study_uid: str, opener: NodeOpener, *, workers: int = 4
) -> tuple[str, FederatedResult]:
    """The first server of ``names`` (in order) that holds ``study_uid``, and the answers.

    Raises
    ------
    NotFoundError
        No server that answered holds the study (the failed ones are named).
    """
    result = find_holders(names, study_uid, opener, workers=workers)
    if result.rows:
        return result.rows[0].servers[0], result
    asked = ", ".join(result.answered) or "none answered"
    failed = "; ".join(f"{name}: {reason}" for name, reason in result.failed.items())
    message = f"study {study_uid} is on no configured server (asked: {asked})"
    raise NotFoundError(message + (f"; failed: {failed}" if failed else ""))
