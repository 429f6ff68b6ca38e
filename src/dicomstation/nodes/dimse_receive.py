"""Receiving C-STORE sub-operations into the local database, without re-encoding.

Each received dataset is written as sent (preamble + file meta + the peer's
encoded bytes) to a ``.part`` file in ``db.root/incoming``, renamed to ``.dcm``
once complete, and handed to a background indexer that calls
:meth:`Database.add_files` in batches (one SQLite transaction per batch rather
than per instance). :meth:`Receiver.finish` waits until everything received so
far is indexed and returns the report. Instances the database already has are
answered with Success and not written again.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pynetdicom.dsutils import encode_file_meta

from dicomstation.models import Phase, ProgressEvent, TransferReport

if TYPE_CHECKING:
    from dicomstation.database import Database

__all__ = ["Receiver"]

Progress = Callable[[ProgressEvent], None]

_SUCCESS = 0x0000
_OUT_OF_RESOURCES = 0xA700
_CANNOT_UNDERSTAND = 0xC000
_BATCH = 64
_BATCH_WAIT = 0.2
_WRITE_BUFFER = 1024 * 1024  # fragments arrive in 16 KB pieces: write in MB pieces
_PREAMBLE = b"\x00" * 128 + b"DICM"


@dataclass
class _Tally:
    """Mutable counters behind the receiver's lock."""

    succeeded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)
    received: int = 0
    nbytes: int = 0
    in_flight: set[str] = field(default_factory=set)


class Receiver:
    """An ``evt.EVT_C_STORE`` handler that stores into a database; thread-safe.

    Parameters
    ----------
    db : Database
        Where instances go.
    operation : str
        Name used in progress events and the report (``"C-GET"``, ``"C-STORE"``...).
    progress : callable, optional
        Receives a :class:`ProgressEvent` per received instance.
    expected : int, optional
        Total announced, for progress bars.
    """

    def __init__(
        self,
        db: Database,
        *,
        operation: str = "C-STORE",
        progress: Progress | None = None,
        expected: int | None = None,
    ) -> None:
        self.db = db
        self.operation = operation
        self.progress = progress
        self.expected = expected
        self._lock = threading.Lock()
        self._tally = _Tally()
        self._paths: dict[str, str] = {}
        self._queue: queue.Queue[Path | None] = queue.Queue()
        self._dir = db.staging_dir("recv")
        self._started = time.perf_counter()
        self._thread = threading.Thread(
            target=self._index_loop, name="dicomstation-indexer", daemon=True
        )
        self._thread.start()

    # -- receiving (pynetdicom threads, or the fast C-GET reader) ----------------------
    def claim(self, sop_uid: str) -> bool:
        """True if ``sop_uid`` should be written; False (counted as skipped) if present."""
        with self._lock:
            duplicate = sop_uid in self._tally.in_flight
            if not duplicate:
                self._tally.in_flight.add(sop_uid)
        if duplicate or self.db.has_instances([sop_uid]):
            self._count_skip(sop_uid, forget=not duplicate)
            return False
        return True

    def open_part(self, sop_uid: str, meta: Any) -> tuple[Path, BinaryIO]:
        """A new ``.part`` file in the staging folder, with preamble and file meta written.

        ``meta`` is a FileMetaDataset, or its encoding as bytes.
        """
        self._dir.mkdir(parents=True, exist_ok=True)
        part = self._dir / f"{sop_uid}.{uuid.uuid4().hex[:8]}.part"
        handle = part.open("wb", buffering=_WRITE_BUFFER)
        try:
            handle.write(_PREAMBLE)
            handle.write(meta if isinstance(meta, bytes) else encode_file_meta(meta))
        except BaseException:
            handle.close()
            part.unlink(missing_ok=True)
            raise
        return part, handle

    def accept(self, part: Path, sop_uid: str, size: int) -> None:
        """A complete ``.part`` file: rename it and queue it for indexing."""
        final = part.with_suffix(".dcm")
        os.replace(part, final)
        with self._lock:
            self._paths[str(final)] = sop_uid
            self._tally.received += 1
            self._tally.nbytes += size
            done = self._tally.received + len(self._tally.skipped)
        self._queue.put(final)
        self._emit(Phase.PROGRESS, done, sop_uid)

    def reject(self, sop_uid: str, reason: str) -> None:
        """A claimed instance that could not be stored."""
        self._fail(sop_uid, reason)

    def handle(self, event: Any) -> int:
        """``evt.EVT_C_STORE`` handler: write the data set as received, queue it for indexing."""
        sop_uid = str(event.request.AffectedSOPInstanceUID)
        if not self.claim(sop_uid):
            return _SUCCESS
        try:
            meta = event.file_meta
            with contextlib.suppress(Exception):
                meta.SourceApplicationEntityTitle = event.assoc.requestor.ae_title
            data = event.request.DataSet.getbuffer()
            part, handle = self.open_part(sop_uid, meta)
            try:
                with handle:
                    handle.write(data)
                self.accept(part, sop_uid, len(data))
            except BaseException:
                part.unlink(missing_ok=True)
                raise
        except OSError as exc:
            self._fail(sop_uid, f"cannot write received instance: {exc}")
            return _OUT_OF_RESOURCES
        except Exception as exc:  # a malformed request must not kill the association
            self._fail(sop_uid, f"cannot store received instance: {exc}")
            return _CANNOT_UNDERSTAND
        return _SUCCESS

    def _count_skip(self, sop_uid: str, *, forget: bool) -> None:
        with self._lock:
            self._tally.skipped.append(sop_uid)
            if forget:
                self._tally.in_flight.discard(sop_uid)
            done = self._tally.received + len(self._tally.skipped)
        self._emit(Phase.SKIPPED, done, sop_uid)

    def _fail(self, sop_uid: str, reason: str) -> None:
        with self._lock:
            self._tally.failed[sop_uid] = reason
            self._tally.in_flight.discard(sop_uid)
        self._emit(Phase.FAILED, 0, sop_uid, reason)

    def _emit(self, phase: Phase, done: int, uid: str | None, message: str = "") -> None:
        if self.progress is not None:
            self.progress(
                ProgressEvent(
                    self.operation, phase, done, self.expected, self._tally.nbytes, uid, message
                )
            )

    # -- indexing (one background thread) -------------------------------------------
    def _index_loop(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            batch: list[Path] = []
            if item is None:
                stop = True
            else:
                batch.append(item)
            deadline = time.monotonic() + _BATCH_WAIT
            while not stop and len(batch) < _BATCH:
                try:
                    more = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                else:
                    batch.append(more)
            if batch:
                self._index(batch)
            for _ in range(len(batch) + (1 if stop else 0)):
                self._queue.task_done()

    def _index(self, batch: list[Path]) -> None:
        try:
            report = self.db.add_files(batch, move=True)
        except Exception as exc:  # the indexer thread must survive anything
            report = TransferReport("add", failed={str(p): str(exc) for p in batch})
            for path in batch:
                path.unlink(missing_ok=True)
        with self._lock:
            for source in report.succeeded:
                self._tally.succeeded.append(self._done(source))
            for source in report.skipped:
                self._tally.skipped.append(self._done(source))
            for source, reason in report.failed.items():
                self._tally.failed[self._done(source)] = reason
                Path(source).unlink(missing_ok=True)

    def _done(self, source: str) -> str:
        """The SOP UID of an indexed file; it may be received again later (call locked)."""
        uid = self._paths.pop(source, source)
        self._tally.in_flight.discard(uid)
        return uid

    # -- results ----------------------------------------------------------------------
    def wait(self) -> None:
        """Block until every instance received so far is indexed."""
        self._queue.join()

    def report(self) -> TransferReport:
        """What was received so far (call :meth:`wait` first for a complete picture)."""
        with self._lock:
            tally = self._tally
            return TransferReport(
                self.operation,
                tuple(tally.succeeded),
                tuple(tally.skipped),
                dict(tally.failed),
                dict(tally.warnings),
                tally.nbytes,
                time.perf_counter() - self._started,
            )

    def add_failure(self, uid: str, reason: str) -> None:
        """Record a failure reported by the peer (e.g. a failed C-GET sub-operation)."""
        with self._lock:
            self._tally.failed.setdefault(uid, reason)

    def add_warning(self, uid: str, text: str) -> None:
        """Record a warning (e.g. a C-GET final status Warning)."""
        with self._lock:
            self._tally.warnings[uid] = text

    def finish(self) -> TransferReport:
        """Index everything, stop the indexer thread, remove the staging folder."""
        self._queue.put(None)
        self._queue.join()
        self._thread.join()
        with contextlib.suppress(OSError):
            self._dir.rmdir()
        return self.report()
