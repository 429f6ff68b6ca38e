"""Receiving C-STORE (listener, C-MOVE, C-GET sub-operations) into the local database.

Each instance is written, as sent, to a staging file whose name we make (a counter:
nothing from the network names a path) in a staging folder of the database
(:meth:`Database.staging_dir`): preamble, file meta from the command, then the peer's
encoded bytes. When its data set is complete the file is flushed to disk (fsync) and
parsed; it is kept only when it is complete DICOM whose SOP Instance UID and SOP Class
UID are the command's (and the class that of the presentation context), so the file
meta agrees with the data set. It is then renamed ``.dcm`` and indexed by group
commit: the association thread that finds no commit running indexes everything
waiting (its own instance and those that arrived on other associations meanwhile)
in one batch, the others wait for that batch (no thread hand-off, no waiting for
more); a batch that fails is retried instance by instance, so a bad instance fails
alone.

The answer is computed only then (:meth:`Incoming.finish`): Success means the row is
committed and the file in place; anything else is a failure status with a reason
(ErrorComment), logged at once. Instances the database already has are answered with
Success and their new copy deleted.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import mmap
import os
import re
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pydicom.dataset import Dataset
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

from dicomstation.database.scanner import scan_bytes, scan_head
from dicomstation.errors import InvalidDicomError
from dicomstation.models import Phase, ProgressEvent, TransferReport

if TYPE_CHECKING:
    from dicomstation.database import Database

__all__ = [
    "CANNOT_UNDERSTAND",
    "DATA_SET_MISMATCH",
    "MAX_INSTANCE_BYTES",
    "OUT_OF_RESOURCES",
    "SUCCESS",
    "Incoming",
    "Receiver",
    "StoreOutcome",
    "StoreRequest",
    "file_meta",
    "printable",
    "valid_uid",
]

Progress = Callable[[ProgressEvent], None]
_LOG = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700  # Refused: Out of Resources (disk full, index failure)
DATA_SET_MISMATCH = 0xA900  # Error: Data Set does not match SOP Class (or the command)
CANNOT_UNDERSTAND = 0xC000  # Error: Cannot understand (not DICOM, truncated, bad UID)
_BATCH = 64
_HEAD = 64 * 1024  # first bytes kept in memory: the index scan needs no second read
#: Default cap on one received instance: a peer cannot fill the disk with one data set.
MAX_INSTANCE_BYTES = 4 * 1024**3
_WRITE_BUFFER = 1024 * 1024  # fragments arrive in 16 KB pieces: write in MB pieces
_PREAMBLE = b"\x00" * 128 + b"DICM"
_UID = re.compile(r"[0-9]+(\.[0-9]+)*\Z")  # PS3.5 9.1 (leading zeros tolerated)
_EXPLICIT_SHORT = struct.Struct("<HH2sH")
_EXPLICIT_LONG = struct.Struct("<HH2s2xI")


def valid_uid(value: str) -> bool:
    """True for a UID of digits and dots, at most 64 characters (PS3.5 9.1)."""
    return len(value) <= 64 and _UID.match(value) is not None


def printable(text: str, limit: int = 80) -> str:
    """Text from the network made safe for a log line or a message (ASCII, bounded)."""
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in text[: limit + 1])
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "..."


def _meta_element(element: int, vr: bytes, value: bytes) -> bytes:
    if vr == b"OB":
        return _EXPLICIT_LONG.pack(0x0002, element, vr, len(value)) + value
    return _EXPLICIT_SHORT.pack(0x0002, element, vr, len(value)) + value


def file_meta(sop_class: str, sop_uid: str, syntax: str, source_ae: str) -> bytes:
    """Encoded File Meta Information (PS3.10 7.1), Explicit VR Little Endian."""

    def text(value: str, pad: bytes) -> bytes:
        raw = value.encode("ascii", "replace")
        return raw + pad * (len(raw) % 2)

    body = b"".join(
        (
            _meta_element(0x0001, b"OB", b"\x00\x01"),
            _meta_element(0x0002, b"UI", text(sop_class, b"\x00")),
            _meta_element(0x0003, b"UI", text(sop_uid, b"\x00")),
            _meta_element(0x0010, b"UI", text(syntax, b"\x00")),
            _meta_element(0x0012, b"UI", text(PYNETDICOM_IMPLEMENTATION_UID, b"\x00")),
            _meta_element(0x0013, b"SH", text(PYNETDICOM_IMPLEMENTATION_VERSION, b" ")),
            _meta_element(0x0016, b"AE", text(source_ae, b" ")),
        )
    )
    return _meta_element(0x0000, b"UL", struct.pack("<I", len(body))) + body


@dataclass(frozen=True)
class StoreRequest:
    """What a C-STORE-RQ says about the data set that follows it.

    ``peer`` names the sender for messages (``"C-STORE from CT1 (10.0.0.5:4100)"``).
    """

    sop_class: str
    sop_uid: str
    context_class: str
    transfer_syntax: str
    source_ae: str
    peer: str


@dataclass(frozen=True)
class StoreOutcome:
    """The C-STORE-RSP to send: status and, for a failure, the reason (ErrorComment)."""

    status: int
    comment: str = ""

    @property
    def ok(self) -> bool:
        """True for Success."""
        return self.status == SUCCESS

    def error_comment(self) -> str:
        """The reason as an ErrorComment value (LO: ASCII, at most 64 characters)."""
        return printable(self.comment, 61) if self.comment else ""

    def as_dataset(self) -> Dataset:
        """As a pynetdicom handler's status return value."""
        status = Dataset()
        status.Status = self.status
        if self.comment:
            status.ErrorComment = self.error_comment()
        return status


class _RefusedError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _os_reason(exc: OSError) -> str:
    return f"cannot write the received instance ({exc.strerror or exc})"


@dataclass
class _Tally:
    """Mutable counters behind the receiver's lock."""

    succeeded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)
    nbytes: int = 0


@dataclass
class _Job:
    """A checked, durable ``.dcm`` file waiting for its batch to commit."""

    path: Path
    head: bytes
    size: int
    request: StoreRequest
    outcome: StoreOutcome | None = None


class Incoming:
    """One instance being received into a staging file; made by :meth:`Receiver.begin`.

    Call :meth:`write` for each fragment of the data set, then :meth:`finish` for the
    answer to send, or :meth:`abandon` if the association ended mid-way.
    """

    def __init__(self, receiver: Receiver, request: StoreRequest) -> None:
        self.receiver = receiver
        self.request = request
        self.size = 0
        self._head = bytearray()
        self._part: Path | None = None
        self._handle: BinaryIO | None = None
        self._refusal: _RefusedError | None = None
        try:
            receiver.check_command(request)
            meta = _PREAMBLE + file_meta(
                request.sop_class, request.sop_uid, request.transfer_syntax, request.source_ae
            )
            self._part, self._handle = receiver.open_part(meta)
            self._head += meta
        except _RefusedError as exc:
            self._refusal = exc
        except OSError as exc:
            self._refusal = _RefusedError(OUT_OF_RESOURCES, _os_reason(exc))

    def write(self, data: bytes | memoryview) -> None:
        """Append a fragment of the data set (discarded once the instance is refused)."""
        self.size += len(data)
        if self._handle is None:
            return
        if self.size > self.receiver.max_instance_bytes:
            self._discard()
            limit = self.receiver.max_instance_bytes
            self._refusal = _RefusedError(OUT_OF_RESOURCES, f"instance larger than {limit} bytes")
            return
        if len(self._head) < _HEAD:
            self._head += data[: _HEAD - len(self._head)]
        try:
            self._handle.write(data)
        except OSError as exc:
            self._discard()
            self._refusal = _RefusedError(OUT_OF_RESOURCES, _os_reason(exc))

    def finish(self) -> StoreOutcome:
        """The data set is complete: check it, make it durable, index it; the answer."""
        try:
            if self._refusal is not None:
                raise self._refusal
            final = self._durable()
        except _RefusedError as exc:
            self._discard()
            return self.receiver.refuse(self.request, exc.status, exc.reason)
        return self.receiver.index(final, bytes(self._head), self.size, self.request)

    def _durable(self) -> Path:
        """Flush and fsync the file, check its data set, rename it ``.dcm``."""
        assert self._handle is not None and self._part is not None
        handle, self._handle = self._handle, None
        try:
            with handle:
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise _RefusedError(OUT_OF_RESOURCES, _os_reason(exc)) from None
        self.receiver.check_data_set(self._part, bytes(self._head), self.request)
        final = self._part.with_suffix(".dcm")
        try:
            os.replace(self._part, final)
        except OSError as exc:
            raise _RefusedError(OUT_OF_RESOURCES, _os_reason(exc)) from None
        self._part = None
        return final

    def abandon(self, reason: str) -> None:
        """The association ended mid-instance: remove the file, record the failure."""
        self._discard()
        self.receiver.refuse(self.request, OUT_OF_RESOURCES, reason)

    def _discard(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
            self._handle = None
        if self._part is not None:
            with contextlib.suppress(OSError):
                self._part.unlink(missing_ok=True)
            self._part = None


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
        self._names = itertools.count(1)
        self._pending: list[_Job] = []
        self._commit = threading.Lock()  # held by the thread committing a batch
        self._busy = threading.Condition(self._lock)
        self._active = 0  # instances between index() and their outcome
        self._dir = db.staging_dir("recv")
        self._started = time.perf_counter()

    # -- receiving (association threads) -----------------------------------------------
    def begin(self, request: StoreRequest) -> Incoming:
        """Start receiving the data set announced by ``request``."""
        return Incoming(self, request)

    def open_part(self, head: bytes) -> tuple[Path, BinaryIO]:
        """A new ``.part`` file, named by us, in our staging folder, starting with ``head``."""
        self._dir.mkdir(parents=True, exist_ok=True)
        part = self._dir / f"{next(self._names):08d}.part"
        handle = part.open("xb", buffering=_WRITE_BUFFER)
        try:
            handle.write(head)
        except BaseException:
            handle.close()
            part.unlink(missing_ok=True)
            raise
        return part, handle

    @staticmethod
    def check_command(request: StoreRequest) -> None:
        """Refuse a command whose UIDs are invalid or whose class is not its context's."""
        for what, uid in (
            ("Affected SOP Instance UID", request.sop_uid),
            ("Affected SOP Class UID", request.sop_class),
        ):
            if not valid_uid(uid):
                raise _RefusedError(CANNOT_UNDERSTAND, f"invalid {what} {printable(uid)!r}")
        if request.sop_class != request.context_class:
            raise _RefusedError(
                DATA_SET_MISMATCH,
                f"Affected SOP Class UID {request.sop_class} is not the presentation "
                f"context's {printable(request.context_class)}",
            )

    @staticmethod
    def check_data_set(path: Path, head: bytes, request: StoreRequest) -> None:
        """Refuse a data set that is not complete DICOM or is not what the command said."""
        name = f"instance {request.sop_uid}"
        try:
            size = path.stat().st_size
            result = scan_head(head, size, name)
            if result is None:
                with (
                    path.open("rb") as handle,
                    mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data,
                ):
                    result = scan_bytes(data, name)
        except InvalidDicomError as exc:
            raise _RefusedError(CANNOT_UNDERSTAND, exc.reason) from None
        except (OSError, ValueError) as exc:
            raise _RefusedError(CANNOT_UNDERSTAND, f"cannot parse the data set ({exc})") from None
        fields = result.fields
        for keyword, wanted in (
            ("SOPInstanceUID", request.sop_uid),
            ("SOPClassUID", request.sop_class),
        ):
            if fields.get(keyword) != wanted:
                raise _RefusedError(
                    DATA_SET_MISMATCH,
                    f"data set {keyword} {printable(str(fields.get(keyword)))!r} is not the "
                    f"command's {wanted}",
                )
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
            if not valid_uid(str(fields.get(keyword, ""))):
                value = printable(str(fields.get(keyword)))
                raise _RefusedError(CANNOT_UNDERSTAND, f"invalid {keyword} {value!r}")

    def index(self, path: Path, head: bytes, size: int, request: StoreRequest) -> StoreOutcome:
        """Index a checked ``.dcm`` file (group commit); the outcome once its batch committed."""
        job = _Job(path, head, size, request)
        with self._lock:
            self._pending.append(job)
            self._active += 1
        try:
            while job.outcome is None:
                with self._commit:  # one batch at a time; ours may be done when we get in
                    with self._lock:
                        batch, self._pending = self._pending[:_BATCH], self._pending[_BATCH:]
                    if batch:
                        self._settle(batch, self._add(batch))
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
            incoming = self.begin(self._request_of(event))
            incoming.write(event.request.DataSet.getbuffer())
            return incoming.finish().as_dataset()
        except Exception as exc:  # a malformed request must not kill the association
            _LOG.warning("%s: cannot store a received instance: %s", self.operation, exc)
            return StoreOutcome(CANNOT_UNDERSTAND, "cannot understand the request").as_dataset()

    def _request_of(self, event: Any) -> StoreRequest:
        assoc = event.assoc
        peer = assoc.requestor if assoc.is_acceptor else assoc.acceptor
        ae = printable(str(peer.ae_title).strip(), 16).replace("\\", "?")
        request = event.request
        return StoreRequest(
            str(request.AffectedSOPClassUID or ""),
            str(request.AffectedSOPInstanceUID or ""),
            str(event.context.abstract_syntax),
            str(event.context.transfer_syntax),
            ae,
            f"{self.operation} from {ae} ({peer.address}:{peer.port})",
        )

    def _emit(self, phase: Phase, done: int, uid: str | None, message: str = "") -> None:
        if self.progress is not None:
            self.progress(
                ProgressEvent(
                    self.operation, phase, done, self.expected, self._tally.nbytes, uid, message
                )
            )

    # -- indexing (group commit) ------------------------------------------------------
    def _add(self, batch: list[_Job]) -> dict[str, StoreOutcome | str]:
        """Index ``batch``; per file: an outcome, or "ok"/"skipped". Never raises."""
        paths = [os.fspath(job.path) for job in batch]
        try:
            report = self.db.add_files(
                paths, move=True, heads={p: job.head for p, job in zip(paths, batch, strict=True)}
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
                with contextlib.suppress(OSError):
                    job.path.unlink(missing_ok=True)
                job.outcome = self.refuse(job.request, result.status, result.comment)
            else:
                with self._lock:
                    self._tally.failed.pop(job.request.sop_uid, None)  # an earlier try failed
                    kept = self._tally.succeeded if result == "ok" else self._tally.skipped
                    kept.append(job.request.sop_uid)
                    self._tally.nbytes += job.size if result == "ok" else 0
                    done = len(self._tally.succeeded) + len(self._tally.skipped)
                phase = Phase.PROGRESS if result == "ok" else Phase.SKIPPED
                self._emit(phase, done, job.request.sop_uid)
                job.outcome = StoreOutcome(SUCCESS)

    # -- results ----------------------------------------------------------------------
    def wait(self) -> None:
        """Block until every instance received so far is indexed (or refused)."""
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
        with contextlib.suppress(OSError):
            self._dir.rmdir()
        return self.report()
