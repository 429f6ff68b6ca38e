"""The one interface every DICOM node implements: DICOMweb, DIMSE and the local database.

The CLI, the web UI and :mod:`dicomstation.transfer` only ever talk to a
:class:`DicomNode`; which protocol is behind it is decided once, by
:func:`dicomstation.nodes.open_node`, from the server's configuration.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar, runtime_checkable

from dicomstation.models import (
    InstanceRef,
    Level,
    PatientRef,
    ProgressEvent,
    Query,
    SeriesRef,
    StudyRef,
    TransferReport,
)

if TYPE_CHECKING:
    from dicomstation.database import Database

__all__ = ["CancelToken", "ClosingNode", "DicomNode", "ProgressCallback", "Ref", "TypedFinds"]

Ref = PatientRef | StudyRef | SeriesRef | InstanceRef
ProgressCallback = Callable[[ProgressEvent], None]


class CancelToken:
    """A flag a UI sets to stop a transfer; nodes check it between instances/chunks."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the running operation to stop as soon as it safely can."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._event.is_set()


class _Finder(Protocol):
    def find(self, query: Query) -> list[Ref]: ...


def level_query(
    level: Level,
    query: Query | None,
    filters: Mapping[str, str],
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> Query:
    """``query`` (or an empty one) at ``level``, with ``filters`` and parent UIDs added."""
    base = query or Query()
    return dataclasses.replace(
        base,
        level=level,
        filters={**base.filters, **filters},
        study_uid=study_uid or base.study_uid,
        series_uid=series_uid or base.series_uid,
    )


_T = TypeVar("_T")


def _typed(refs: Iterable[object], kind: type[_T]) -> list[_T]:
    return [ref for ref in refs if isinstance(ref, kind)]


class TypedFinds:
    """Mixin of the nodes: queries typed per level, built once on the node's ``find``.

    ``node.find_studies(PatientName="DOE^*")`` returns ``list[StudyRef]``, so user
    code reads ``.study_uid`` without narrowing :data:`Ref`. Keyword arguments are
    DICOM keyword filters, merged over ``query.filters``; the level is forced.
    """

    def find_patients(
        self: _Finder, query: Query | None = None, **filters: str
    ) -> list[PatientRef]:
        """Patients matching ``query`` and ``filters`` (DIMSE and the local database)."""
        return _typed(self.find(level_query(Level.PATIENT, query, filters)), PatientRef)

    def find_studies(self: _Finder, query: Query | None = None, **filters: str) -> list[StudyRef]:
        """Studies matching ``query`` and ``filters`` (``PatientName="DOE^*"``...)."""
        return _typed(self.find(level_query(Level.STUDY, query, filters)), StudyRef)

    def find_series(
        self: _Finder, query: Query | None = None, *, study_uid: str | None = None, **filters: str
    ) -> list[SeriesRef]:
        """Series matching ``query`` and ``filters``, within ``study_uid`` when given."""
        query = level_query(Level.SERIES, query, filters, study_uid=study_uid)
        return _typed(self.find(query), SeriesRef)

    def find_instances(
        self: _Finder,
        query: Query | None = None,
        *,
        study_uid: str | None = None,
        series_uid: str | None = None,
        **filters: str,
    ) -> list[InstanceRef]:
        """Instances matching ``query`` and ``filters``, within a study or series when given."""
        query = level_query(Level.IMAGE, query, filters, study_uid=study_uid, series_uid=series_uid)
        return _typed(self.find(query), InstanceRef)


class ClosingNode(TypedFinds):
    """Mixin of the nodes: ``with`` closes the node on exit (also on an error); typed finds."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        close: Callable[[], None] = getattr(self, "close")  # noqa: B009 - the node's own
        close()


@runtime_checkable
class DicomNode(Protocol):
    """A place that holds DICOM: it can be queried, retrieved from and stored to.

    An implementation writes ``find``/``iter_find`` and inherits the typed
    ``find_patients``/``find_studies``/``find_series``/``find_instances`` from
    :class:`TypedFinds` (or :class:`ClosingNode`, which also gives ``with``).
    """

    name: str

    def echo(self) -> float:
        """Check the node answers (C-ECHO, or a cheap QIDO-RS); return seconds taken."""
        ...

    def iter_find(self, query: Query) -> Iterator[Ref]:
        """Yield matches as they arrive, paging lazily."""
        ...

    def find(self, query: Query) -> list[Ref]:
        """Return all matches of :meth:`iter_find` as a list."""
        ...

    def find_patients(self, query: Query | None = None, **filters: str) -> list[PatientRef]:
        """Patients matching ``query`` and DICOM keyword ``filters`` (see :class:`TypedFinds`)."""
        ...

    def find_studies(self, query: Query | None = None, **filters: str) -> list[StudyRef]:
        """Studies matching ``query`` and DICOM keyword ``filters``."""
        ...

    def find_series(
        self, query: Query | None = None, *, study_uid: str | None = None, **filters: str
    ) -> list[SeriesRef]:
        """Series matching ``query`` and ``filters``, within ``study_uid`` when given."""
        ...

    def find_instances(
        self,
        query: Query | None = None,
        *,
        study_uid: str | None = None,
        series_uid: str | None = None,
        **filters: str,
    ) -> list[InstanceRef]:
        """Instances matching ``query`` and ``filters``, within a study or series when given."""
        ...

    def metadata(self, study_uid: str, series_uid: str | None = None) -> list[Mapping[str, Any]]:
        """Return DICOM JSON headers of every instance (no bulk data), without fetching files."""
        ...

    def retrieve(
        self,
        study_uid: str,
        series_uids: Sequence[str] = (),
        sop_uids: Sequence[str] = (),
        *,
        into: Database,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> TransferReport:
        """Fetch a study, some of its series or instances into the local database."""
        ...

    def store(
        self,
        files: Iterable[Path],
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> TransferReport:
        """Send DICOM files to the node (STOW-RS or C-STORE)."""
        ...

    def __enter__(self) -> DicomNode:
        """The node itself (``with open_node(server) as node: ...``)."""
        ...

    def __exit__(self, *exc: object) -> None:
        """Close the node."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
