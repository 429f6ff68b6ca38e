"""The local database seen as a :class:`~dicomstation.nodes.base.DicomNode`.

Lets the UI and scripts treat "this computer" like any server: query it, read
metadata, copy from it into another database, or store files into it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dicomstation.database import Database
from dicomstation.models import Phase, ProgressEvent, Query, TransferReport
from dicomstation.nodes.base import CancelToken, ClosingNode, ProgressCallback, Ref

__all__ = ["LocalNode"]


class LocalNode(ClosingNode):
    """A :class:`Database` behind the node interface."""

    def __init__(self, db: Database, name: str = "local") -> None:
        self.db = db
        self.name = name

    def echo(self) -> float:
        """Time a trivial query of the index."""
        started = time.perf_counter()
        self.db.find(Query(limit=1))
        return time.perf_counter() - started

    def iter_find(self, query: Query) -> Iterator[Ref]:
        """Matches from the index."""
        return self.db.iter_find(query)

    def find(self, query: Query) -> list[Ref]:
        """All matches from the index."""
        return self.db.find(query)

    def metadata(self, study_uid: str, series_uid: str | None = None) -> list[Mapping[str, Any]]:
        """Cached DICOM JSON headers."""
        return self.db.metadata(study_uid, series_uid)

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
        """Copy a study, series or instances from this database into ``into``."""
        if sop_uids:
            files = [self.db.instance_path(uid) for uid in sop_uids]
        elif series_uids:
            files = [f for uid in series_uids for f in self.db.series_files(uid)]
        else:
            files = self.db.study_files(study_uid)
        return into.import_path(files, copy=True, progress=progress, cancel=cancel)

    def store(
        self,
        files: Iterable[Path],
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> TransferReport:
        """Import files (copied) into this database."""
        report = self.db.import_path(list(files), copy=True, progress=progress, cancel=cancel)
        if progress is not None:
            progress(ProgressEvent("store", Phase.DONE, len(report.succeeded)))
        return report

    def close(self) -> None:
        """Nothing to release (the database belongs to the caller)."""
