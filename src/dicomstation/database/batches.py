"""The batch loop of an import or add: insert each scanned batch, count, report progress.

Files that are not instances but no failure either (a DICOMDIR) become the report's
``warnings``.

:meth:`Database.import_path` and :meth:`Database.add_files` scan their sources in
batches (:func:`~.importer.scan_files`, or one batch their writer already scanned)
and give each to :func:`run_batches` with the database's own insert; a full disk
makes room by handing scanned copies back (:func:`~.importer.make_room`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING

from dicomstation.database.importer import Scanned, make_room
from dicomstation.database.ingest import Mode
from dicomstation.errors import DiskFullError
from dicomstation.models import Phase, ProgressEvent, TransferReport

if TYPE_CHECKING:
    from dicomstation.nodes.base import CancelToken

Scans = Generator[list[Scanned], None, None]
Insert = Callable[[list[Scanned], Mode], TransferReport]
Progress = Callable[[ProgressEvent], None]


def insert_staged(
    insert: Insert, batch: list[Scanned], mode: Mode, scans: Scans, staging: Path | None
) -> tuple[TransferReport, bool]:
    """Insert a batch, making room on a full disk; True if the import must stop there."""
    full = any(s.disk_full for s in batch)
    if full and staging is not None:
        batch = make_room(batch, scans, staging)
    try:
        return insert(batch, mode), full
    except DiskFullError:
        if full or staging is None:
            raise
    return insert(make_room(batch, scans, staging), mode), True  # copies took it


def run_batches(
    scans: Scans,
    insert: Insert,
    mode: Mode,
    staging: Path | None,
    *,
    operation: str,
    total: int,
    progress: Progress | None,
    cancel: CancelToken | None,
    disk_full: Callable[[int], Exception],
) -> TransferReport:
    """Insert every batch of ``scans``; ``disk_full(done)`` is raised when the disk fills."""
    started = time.perf_counter()
    ok: list[str] = []
    skipped: list[str] = []
    failed: dict[str, str] = {}
    notes: dict[str, str] = {}  # files that are no instance and no failure (DICOMDIR)
    nbytes = 0
    for scanned in scans:
        if cancel is not None and cancel.cancelled:
            break
        notes.update({s.source: s.error or "" for s in scanned if s.note})
        batch = [s for s in scanned if not s.note]
        result, full = insert_staged(insert, batch, mode, scans, staging)
        if full:
            raise disk_full(len(ok) + len(result.succeeded))
        ok += result.succeeded
        skipped += result.skipped
        failed.update(result.failed)
        nbytes += result.bytes_transferred
        if progress is not None:
            done = len(ok) + len(skipped) + len(failed)
            progress(ProgressEvent(operation, Phase.PROGRESS, done, total, nbytes))
    seconds = time.perf_counter() - started
    if progress is not None:
        progress(ProgressEvent(operation, Phase.DONE, total, total, nbytes))
    return TransferReport(operation, tuple(ok), tuple(skipped), failed, notes, nbytes, seconds)
