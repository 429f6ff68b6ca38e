"""One received instance: its C-STORE-RQ, its staging file, its checks, its answer.

:class:`Incoming` writes a data set, fragment by fragment, to a staging file named
by the receiver (never by the network), then (:meth:`Incoming.finish`) flushes it
to disk, checks it (:func:`check_command`, :func:`check_data_set`) and hands it to
the receiver to index; the C-STORE-RSP to send is the returned
:class:`StoreOutcome`. Used by :mod:`dimse_receive` (pynetdicom paths) and by the
fast paths (:mod:`dimse_fastget`, :mod:`dimse_fastscp`).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydicom.dataset import Dataset
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

from dicomstation.database.importer import Scanned
from dicomstation.database.leftovers import COMPLETE_PART_MODE
from dicomstation.database.scanner import ScanResult, scan_bytes, scan_head
from dicomstation.errors import InvalidDicomError
from dicomstation.safe_text import printable

__all__ = [
    "CANNOT_UNDERSTAND",
    "DATA_SET_MISMATCH",
    "OUT_OF_RESOURCES",
    "SUCCESS",
    "Incoming",
    "InstanceSink",
    "StoreOutcome",
    "StoreRequest",
    "check_command",
    "check_data_set",
    "file_meta",
    "printable",
    "request_of_event",
    "valid_uid",
]

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700  # Refused: Out of Resources (disk full, index failure)
DATA_SET_MISMATCH = 0xA900  # Error: Data Set does not match SOP Class (or the command)
CANNOT_UNDERSTAND = 0xC000  # Error: Cannot understand (not DICOM, truncated, bad UID)
_HEAD = 64 * 1024  # first bytes kept in memory: the index scan needs no second read
_HELD = 256 * 1024  # fragments held in memory, then written at once (one writev)
_PREAMBLE = b"\x00" * 128 + b"DICM"
_UID = re.compile(r"[0-9]+(\.[0-9]+)*\Z")  # PS3.5 9.1 (leading zeros tolerated)
_EXPLICIT_SHORT = struct.Struct("<HH2sH")
_EXPLICIT_LONG = struct.Struct("<HH2s2xI")


def valid_uid(value: str) -> bool:
    """True for a UID of digits and dots, at most 64 characters (PS3.5 9.1)."""
    return len(value) <= 64 and _UID.match(value) is not None


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


def request_of_event(event: Any, operation: str) -> StoreRequest:
    """The :class:`StoreRequest` of a pynetdicom ``evt.EVT_C_STORE`` event.

    ``operation`` names what received it in messages (``"C-STORE from AE (host:port)"``).
    """
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
        f"{operation} from {ae} ({peer.address}:{peer.port})",
    )


class _RefusedError(Exception):
    """An instance refused: the status to answer and the reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _os_reason(exc: OSError) -> str:
    return f"cannot write the received instance ({exc.strerror or exc})"


class InstanceSink(Protocol):
    """What an :class:`Incoming` needs from its receiver."""

    max_instance_bytes: int

    def open_part(self) -> tuple[Path, int]: ...

    def index(
        self,
        path: Path,
        head: bytes,
        size: int,
        request: StoreRequest,
        *,
        defer: bool = False,
        scan: Scanned | None = None,
    ) -> StoreOutcome: ...

    def refuse(self, request: StoreRequest, status: int, reason: str) -> StoreOutcome: ...


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


def check_data_set(path: Path, head: bytes, size: int, request: StoreRequest) -> ScanResult:
    """Refuse a data set that is not complete DICOM or is not what the command said.

    ``size`` is the size of the file, as written and flushed by the caller. Returns
    the index fields, which the receiver hands to the database (no second scan).
    """
    name = f"instance {request.sop_uid}"
    try:
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
    return result


def _write_all(fd: int, pieces: list[bytes]) -> None:
    """Write ``pieces`` in order (``writev``; a short write is continued)."""
    views = [memoryview(piece) for piece in pieces]
    while views:
        done = os.writev(fd, views[:1024])
        while views and done >= len(views[0]):
            done -= len(views[0])
            views.pop(0)
        if done:
            views[0] = views[0][done:]


class Incoming:
    """One instance being received into a staging file; made by :meth:`Receiver.begin`.

    Call :meth:`write` for each fragment of the data set, then :meth:`finish` for the
    answer to send, or :meth:`abandon` if the association ended mid-way. Fragments
    are held in memory up to 256 KiB and written with one ``writev`` (a small
    instance: its whole file at once), the rest as it comes.
    """

    def __init__(self, receiver: InstanceSink, request: StoreRequest) -> None:
        self.receiver = receiver
        self.request = request
        self.size = 0
        self._meta_size = 0
        self._head = bytearray()
        self._held: list[bytes] = []  # not written yet
        self._held_bytes = 0
        self._part: Path | None = None
        self._fd: int | None = None
        self._refusal: _RefusedError | None = None
        try:
            check_command(request)
            meta = _PREAMBLE + file_meta(
                request.sop_class, request.sop_uid, request.transfer_syntax, request.source_ae
            )
            self._part, self._fd = receiver.open_part()
            self._held.append(meta)
            self._held_bytes = self._meta_size = len(meta)
            self._head += meta
        except _RefusedError as exc:
            self._refusal = exc
        except OSError as exc:
            self._refusal = _RefusedError(OUT_OF_RESOURCES, _os_reason(exc))

    def write(self, data: bytes | memoryview) -> None:
        """Append a fragment of the data set (discarded once the instance is refused)."""
        self.size += len(data)
        if self._fd is None:
            return
        if self.size > self.receiver.max_instance_bytes:
            self._discard()
            limit = self.receiver.max_instance_bytes
            self._refusal = _RefusedError(OUT_OF_RESOURCES, f"instance larger than {limit} bytes")
            return
        if len(self._head) < _HEAD:
            self._head += data[: _HEAD - len(self._head)]
        self._held.append(bytes(data))  # a view into the reader's buffer: copied
        self._held_bytes += len(data)
        if self._held_bytes >= _HELD:
            try:
                self._flush()
            except OSError as exc:
                self._discard()
                self._refusal = _RefusedError(OUT_OF_RESOURCES, _os_reason(exc))

    def _flush(self) -> None:
        assert self._fd is not None
        held, self._held, self._held_bytes = self._held, [], 0
        _write_all(self._fd, held)

    def finish(self, *, defer: bool = False) -> StoreOutcome:
        """The data set is complete: check it, make it durable, index it; the answer.

        With ``defer`` Success is answered once the file is safe on disk; the receiver
        indexes it later (:meth:`Receiver.drain`).
        """
        try:
            if self._refusal is not None:
                raise self._refusal
            final, scan = self._durable()
        except _RefusedError as exc:
            self._discard()
            return self.receiver.refuse(self.request, exc.status, exc.reason)
        head = bytes(self._head)
        return self.receiver.index(final, head, self.size, self.request, defer=defer, scan=scan)

    def _durable(self) -> tuple[Path, Scanned]:
        """Write the rest, check the data set, mark the file complete and fsync it.

        The staging file's name was made durable when the receiver created it (its
        folder fsynced once for a batch of names), so one fsync of the file makes the
        data and its complete mode (:data:`COMPLETE_PART_MODE`, which the next open
        of the database indexes after a crash) durable: no rename, no folder fsync
        per instance.
        """
        assert self._fd is not None and self._part is not None
        try:
            self._flush()
        except OSError as exc:
            raise _RefusedError(OUT_OF_RESOURCES, _os_reason(exc)) from None
        size = self._meta_size + self.size  # what was written
        found = check_data_set(self._part, bytes(self._head), size, self.request)
        fd, self._fd = self._fd, None
        try:
            os.fchmod(fd, COMPLETE_PART_MODE)
            os.fsync(fd)
        except OSError as exc:
            raise _RefusedError(OUT_OF_RESOURCES, _os_reason(exc)) from None
        finally:
            os.close(fd)
        final, self._part = self._part, None
        return final, Scanned(os.fspath(final), found.fields, found.transfer_syntax, size)

    def abandon(self, reason: str) -> None:
        """The association ended mid-instance: remove the file, record the failure."""
        self._discard()
        self.receiver.refuse(self.request, OUT_OF_RESOURCES, reason)

    def _discard(self) -> None:
        self._held, self._held_bytes = [], 0
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if self._part is not None:
            with contextlib.suppress(OSError):
                self._part.unlink(missing_ok=True)
            self._part = None
