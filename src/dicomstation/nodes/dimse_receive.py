"""Receiving C-STORE (listener, C-MOVE, C-GET sub-operations) into the local database.

Each instance is written, as sent, to a staging file whose name we make (a counter:
nothing from the network names a path) in a staging folder of the database
(:meth:`Database.staging_dir`): preamble, file meta from the command, then the peer's
encoded bytes. When its data set is complete the file is flushed to disk (fsync) and
parsed; it is kept only when it is complete DICOM whose SOP Instance UID and SOP Class
UID are the command's (and the class that of the presentation context), so the file
meta agrees with the data set. It is then marked complete (mode
:data:`~dicomstation.database.leftovers.COMPLETE_PART_MODE`, fsynced with its data;
its name was made durable when it was created, in a batch of names whose folder is
fsynced once) and indexed by group commit: the association thread that finds no
commit running indexes everything waiting (its own instance and those that arrived
on other associations meanwhile) in one batch, the others wait for that batch (no
thread hand-off, no waiting for more); a batch that fails is retried instance by
instance, so a bad instance fails alone.

The answer is computed only then (:meth:`Incoming.finish`): Success means the row is
committed and the file in place; anything else is a failure status with a reason
(ErrorComment), logged at once. Instances the database already has are answered with
Success and their new copy deleted.

A C-GET acknowledges sooner (``defer``): Success once the checked file is safe on
disk (marked complete and fsynced), and the index is written later, on the C-GET's
own thread between two sub-operations (:meth:`Receiver.drain_if_full`: once 512
acknowledged instances, or 8 MiB of their first bytes, wait; and
:meth:`Receiver.wait` at its end), one commit per batch. A background indexing
thread, which this replaced, hid the indexing behind the peer's turns but cost
more than it hid: its GIL hand-overs with the receiving thread added ~20 us of CPU
per instance, and C-GETs of 2,000 small instances from dcmqrscp ran 5-8 % slower
(bench_dimse's C-GET rows, CPU per instance included). A process killed (or a machine
stopped) meanwhile leaves complete files in its ``recv`` staging folder, which the
next open of the database indexes (:mod:`dicomstation.database.leftovers`); an
acknowledged file that cannot be indexed now is kept there for that (renamed
``.dcm``, folder fsynced), and reported failed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset

from dicomstation.models import Phase, ProgressEvent, TransferReport
from dicomstation.nodes.dimse_instance import (
    CANNOT_UNDERSTAND,
    OUT_OF_RESOURCES,
    SUCCESS,
    Incoming,
    StoreOutcome,
    StoreRequest,
    printable,
    request_of_event,
)
from dicomstation.nodes.dimse_names import StagingNames, sync_folder

if TYPE_CHECKING:
    from dicomstation.database import Database
    from dicomstation.database.importer import Scanned

__all__ = ["MAX_INSTANCE_BYTES", "Receiver"]

Progress = Callable[[ProgressEvent], None]
_LOG = logging.getLogger(__name__)

_BATCH = 64  # instances per group commit of a storage SCP
_DEFERRED_BATCH = 512  # acknowledged, not indexed yet: at most this many...
_DEFERRED_BYTES = 8 << 20  # ...and this many bytes of their heads in memory
#: Default cap on one received instance: a peer cannot fill the disk with one data set.
MAX_INSTANCE_BYTES = 4 * 1024**3


@dataclass
class _Tally:
    """Mutable counters behind the receiver's lock."""

    succeeded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)
    nbytes: int = 0
    acknowledged: int = 0  # deferred: answered Success (safe on disk), indexed later
    acknowledged_bytes: int = 0


@dataclass(eq=False)
class _Job:
    """A checked, durable ``.dcm`` file waiting for its batch to commit."""

    path: Path
    head: bytes
    size: int
    request: StoreRequest
    outcome: StoreOutcome | None = None
    deferred: bool = False  # already acknowledged: indexed by drain(), file kept on failure
    scan: Scanned | None = None  # as checked on receipt: the database does not scan it again


class Receiver:
    """Stores received instances into a database; thread-safe (one per transfer/listener).

    Parameters
    ----------
    db : Database
        Where instances go.
    operation : str
        Name used in progress events, messages and the report (``"C-GET"``, ``"C-STORE"``...).
    progress : callable, optional
        Receives a :class:`ProgressEvent` per received instance.
    expected : int, optional
        Total announced, for progress bars.
    max_instance_bytes : int
        Larger data sets are refused (0xA700) and their bytes discarded as they come.
    """

    def __init__(
        self,
        db: Database,
        *,
        operation: str = "C-STORE",
        progress: Progress | None = None,
        expected: int | None = None,
        max_instance_bytes: int = MAX_INSTANCE_BYTES,
    ) -> None:
        self.db = db
        self.max_instance_bytes = max_instance_bytes
        self.operation = operation
        self.progress = progress
        self.expected = expected
        self._lock = threading.Lock()
        self._tally = _Tally()
        self._pending: list[_Job] = []
        self._commit = threading.Lock()  # held by the thread committing a batch
        self._busy = threading.Condition(self._lock)
        self._active = 0  # instances between index() and their outcome
        self._dir = db.staging_dir("recv")
        self._names = StagingNames(self._dir)
        self._deferred_bytes = 0  # heads of the acknowledged jobs waiting in _pending
        self._started = time.perf_counter()

    # -- receiving (association threads) -----------------------------------------------
    def begin(self, request: StoreRequest) -> Incoming:
        """Start receiving the data set announced by ``request``."""
        return Incoming(self, request)

    def open_part(self) -> tuple[Path, int]:
        """A new empty ``.part`` file whose name is durable (:mod:`dimse_names`)."""
        return self._names.take()

    def make_names(self) -> None:
        """Create the next batch of staging files now if none is left (after an answer,
        while the peer prepares its next instance, rather than when it arrives)."""
        self._names.prepare()

    def index(
        self,
        path: Path,
        head: bytes,
        size: int,
        request: StoreRequest,
        *,
        defer: bool = False,
        scan: Scanned | None = None,
    ) -> StoreOutcome:
        """Index a checked ``.dcm`` file (group commit); the outcome once its batch committed.

        With ``defer`` the file is already safe on disk: it is queued for :meth:`drain`
        and Success returned at once. ``scan`` gives its fields as found by the check
        (the database does not scan it again).
        """
        job = _Job(path, head, size, request, deferred=defer, scan=scan)
        with self._lock:
            self._pending.append(job)
            self._active += 1
            if defer:
                self._deferred_bytes += len(head)
                self._tally.acknowledged += 1
                self._tally.acknowledged_bytes += size
                done, nbytes = self._tally.acknowledged, self._tally.acknowledged_bytes
        if defer:  # progress counts what is safe on disk; failures to index come later
            self._emit(Phase.PROGRESS, done, request.sop_uid, nbytes=nbytes)
            return StoreOutcome(SUCCESS)
        try:
            while job.outcome is None:
                with self._commit:  # one batch at a time; ours may be done when we get in
                    with self._lock:
                        batch, self._pending = self._pending[:_BATCH], self._pending[_BATCH:]
                    self._commit_batch(batch)
                    with self._lock:
                        lost = job.outcome is None and all(p is not job for p in self._pending)
                    if lost:  # taken by a batch that failed without an answer: never hang
                        job.outcome = StoreOutcome(OUT_OF_RESOURCES, "not indexed")
        finally:
            with self._busy:
                self._active -= 1
                self._busy.notify_all()
        return job.outcome

    def refuse(self, request: StoreRequest, status: int, reason: str) -> StoreOutcome:
        """Record and log a refused instance; the answer to send."""
        uid = printable(request.sop_uid)
        _LOG.warning(
            "%s: refused instance %s (status 0x%04X): %s", request.peer, uid, status, reason
        )
        with self._lock:
            self._tally.failed[uid] = f"{request.peer}: {reason}"
        self._emit(Phase.FAILED, 0, uid, reason)
        return StoreOutcome(status, reason)

    def handle(self, event: Any) -> Dataset:
        """pynetdicom ``evt.EVT_C_STORE`` handler (the pynetdicom receive paths)."""
        try:
            incoming = self.begin(request_of_event(event, self.operation))
            incoming.write(event.request.DataSet.getbuffer())
            return incoming.finish().as_dataset()
        except Exception as exc:  # a malformed request must not kill the association
            _LOG.warning("%s: cannot store a received instance: %s", self.operation, exc)
            return StoreOutcome(CANNOT_UNDERSTAND, "cannot understand the request").as_dataset()

    def _emit(
        self, phase: Phase, done: int, uid: str | None, message: str = "", nbytes: int = -1
    ) -> None:
        if self.progress is not None:
            nbytes = self._tally.nbytes if nbytes < 0 else nbytes
            self.progress(
                ProgressEvent(self.operation, phase, done, self.expected, nbytes, uid, message)
            )

    # -- indexing (group commit) ------------------------------------------------------
    def backlog(self) -> int:
        """How many received instances wait to be indexed."""
        return len(self._pending)

    def drain(self, *, batch_size: int = _BATCH) -> None:
        """Index every queued instance now, ``batch_size`` per commit."""
        with self._commit:
            while True:
                with self._lock:
                    batch = self._pending[:batch_size]
                    self._pending = self._pending[batch_size:]
                    self._deferred_bytes -= sum(len(j.head) for j in batch if j.deferred)
                if not batch:
                    return
                self._commit_batch(batch)

    def drain_if_full(self) -> None:
        """Index the acknowledged instances once 512 (or 8 MiB of their heads) wait.

        Called by a C-GET between two sub-operations, on its own thread: the memory
        they hold stays bounded, and there is no second thread to hand the GIL to.
        """
        with self._lock:
            full = len(self._pending) >= _DEFERRED_BATCH or self._deferred_bytes >= _DEFERRED_BYTES
        if full:
            self.drain(batch_size=_DEFERRED_BATCH)

    def _commit_batch(self, batch: list[_Job]) -> None:
        """Index ``batch`` (call with the commit lock); every job gets an outcome."""
        try:
            if batch:
                self._settle(batch, self._add(batch))
        finally:
            for other in batch:
                if other.outcome is None:  # _settle itself failed: answer, never hang
                    other.outcome = StoreOutcome(OUT_OF_RESOURCES, "not indexed")
            deferred = sum(1 for job in batch if job.deferred)
            if deferred:  # nobody waits in index() for these
                with self._busy:
                    self._active -= deferred
                    self._busy.notify_all()

    def _add(self, batch: list[_Job]) -> dict[str, StoreOutcome | str]:
        """Index ``batch``; per file: an outcome, or "ok"/"skipped". Never raises."""
        paths = [os.fspath(job.path) for job in batch]
        jobs = dict(zip(paths, batch, strict=True))
        scanned = {p: job.scan for p, job in jobs.items() if job.scan is not None}
        try:
            report = self.db.add_files(
                paths, move=True, heads={p: job.head for p, job in jobs.items()}, scanned=scanned
            )
        except Exception as exc:  # the batch failed as a whole: try each instance alone
            if len(batch) > 1:
                results: dict[str, StoreOutcome | str] = {}
                for job in batch:
                    results.update(self._add([job]))
                return results
            return {paths[0]: StoreOutcome(OUT_OF_RESOURCES, f"cannot index: {exc}")}
        results = {source: "ok" for source in report.succeeded}
        results.update({source: "skipped" for source in report.skipped})
        for source, reason in report.failed.items():
            results[source] = StoreOutcome(CANNOT_UNDERSTAND, reason)
        return results

    def _settle(self, batch: list[_Job], results: dict[str, StoreOutcome | str]) -> None:
        for job in batch:
            result = results.get(os.fspath(job.path), StoreOutcome(OUT_OF_RESOURCES, "not indexed"))
            if isinstance(result, StoreOutcome):
                reason = result.comment
                if job.deferred:  # acknowledged: kept for the next open to index
                    reason = f"acknowledged, not indexed (kept in {job.path.parent.name}): {reason}"
                    self._keep(job)
                else:
                    with contextlib.suppress(OSError):
                        job.path.unlink(missing_ok=True)
                job.outcome = self.refuse(job.request, result.status, reason)
            else:
                with self._lock:
                    self._tally.failed.pop(job.request.sop_uid, None)  # an earlier try failed
                    kept = self._tally.succeeded if result == "ok" else self._tally.skipped
                    kept.append(job.request.sop_uid)
                    self._tally.nbytes += job.size if result == "ok" else 0
                    done = len(self._tally.succeeded) + len(self._tally.skipped)
                if not job.deferred:  # a deferred one was reported when acknowledged
                    phase = Phase.PROGRESS if result == "ok" else Phase.SKIPPED
                    self._emit(phase, done, job.request.sop_uid)
                job.outcome = StoreOutcome(SUCCESS)

    def _keep(self, job: _Job) -> None:
        """An acknowledged file not indexed: named ``.dcm`` (a failed move into the
        store may have changed its mode), durably, for the next open to index."""
        try:
            os.replace(job.path, job.path.with_suffix(".dcm"))
            sync_folder(self._dir)
        except OSError as exc:
            _LOG.warning("%s: cannot keep %s: %s", self.operation, job.path.name, exc)

    # -- results ----------------------------------------------------------------------
    def wait(self) -> None:
        """Block until every instance received so far is indexed (or refused)."""
        self.drain(batch_size=_DEFERRED_BATCH)
        with self._busy:
            self._busy.wait_for(lambda: self._active == 0)

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
            self._tally.failed.setdefault(printable(uid), reason)

    def add_warning(self, uid: str, text: str) -> None:
        """Record a warning (e.g. a C-GET final status Warning)."""
        with self._lock:
            self._tally.warnings[uid] = text

    def finish(self) -> TransferReport:
        """Wait until everything received is indexed, remove the staging folder."""
        self.wait()
        self._names.release()
        with contextlib.suppress(OSError):
            self._dir.rmdir()
        return self.report()
