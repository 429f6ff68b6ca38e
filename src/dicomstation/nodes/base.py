"""The one interface every DICOM node implements: DICOMweb, DIMSE and the local database.

The CLI, the web UI and :mod:`dicomstation.transfer` only ever talk to a
:class:`DicomNode`; which protocol is behind it is decided once, by
:func:`dicomstation.nodes.open_node`, from the server's configuration.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

from dicomstation.models import (
    InstanceRef,
    PatientRef,
    ProgressEvent,
    Query,
    SeriesRef,
    StudyRef,
    TransferReport,
)

if TYPE_CHECKING:
    from dicomstation.database import Database

__all__ = ["CancelToken", "ClosingNode", "DicomNode", "ProgressCallback", "Ref"]

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


class ClosingNode:
    """Mixin of the nodes: ``with`` closes the node on exit (also on an error)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        close: Callable[[], None] = getattr(self, "close")  # noqa: B009 - the node's own
        close()


@runtime_checkable
class DicomNode(Protocol):
    """A place that holds DICOM: it can be queried, retrieved from and stored to."""

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
