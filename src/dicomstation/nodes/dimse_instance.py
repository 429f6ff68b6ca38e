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
from typing import BinaryIO, Protocol

from pydicom.dataset import Dataset
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

from dicomstation.database.importer import Scanned
from dicomstation.database.scanner import ScanResult, scan_bytes, scan_head
from dicomstation.errors import InvalidDicomError

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
    "valid_uid",
]

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700  # Refused: Out of Resources (disk full, index failure)
DATA_SET_MISMATCH = 0xA900  # Error: Data Set does not match SOP Class (or the command)
CANNOT_UNDERSTAND = 0xC000  # Error: Cannot understand (not DICOM, truncated, bad UID)
_HEAD = 64 * 1024  # first bytes kept in memory: the index scan needs no second read
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

    def open_part(self, head: bytes) -> tuple[Path, BinaryIO]: ...

    def sync_folder(self) -> None: ...

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


class Incoming:
    """One instance being received into a staging file; made by :meth:`Receiver.begin`.

    Call :meth:`write` for each fragment of the data set, then :meth:`finish` for the
    answer to send, or :meth:`abandon` if the association ended mid-way.
    """

    def __init__(self, receiver: InstanceSink, request: StoreRequest) -> None:
        self.receiver = receiver
        self.request = request
        self.size = 0
        self._meta_size = 0
        self._head = bytearray()
        self._part: Path | None = None
        self._handle: BinaryIO | None = None
        self._refusal: _RefusedError | None = None
        try:
            check_command(request)
            meta = _PREAMBLE + file_meta(
                request.sop_class, request.sop_uid, request.transfer_syntax, request.source_ae
            )
            self._part, self._handle = receiver.open_part(meta)
            self._head += meta
            self._meta_size = len(meta)
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

    def finish(self, *, defer: bool = False) -> StoreOutcome:
        """The data set is complete: check it, make it durable, index it; the answer.

        With ``defer`` Success is answered once the file is safe on disk (its folder
        fsynced too); the receiver indexes it later (:meth:`Receiver.drain`).
        """
        try:
            if self._refusal is not None:
                raise self._refusal
            final, scan = self._durable()
            if defer:
                self._sync_folder(final)
        except _RefusedError as exc:
            self._discard()
            return self.receiver.refuse(self.request, exc.status, exc.reason)
        head = bytes(self._head)
        return self.receiver.index(final, head, self.size, self.request, defer=defer, scan=scan)

    def _sync_folder(self, final: Path) -> None:
        try:
            self.receiver.sync_folder()
        except OSError as exc:
            self._part = final  # removed with the refusal: never acknowledged
            raise _RefusedError(OUT_OF_RESOURCES, _os_reason(exc)) from None

    def _durable(self) -> tuple[Path, Scanned]:
        """Flush and fsync the file, check its data set, rename it ``.dcm``; its fields."""
        assert self._handle is not None and self._part is not None
        handle, self._handle = self._handle, None
        try:
            with handle:
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise _RefusedError(OUT_OF_RESOURCES, _os_reason(exc)) from None
        size = self._meta_size + self.size  # what the flushed handle wrote
        found = check_data_set(self._part, bytes(self._head), size, self.request)
        final = self._part.with_suffix(".dcm")
        try:
            os.replace(self._part, final)
        except OSError as exc:
            raise _RefusedError(OUT_OF_RESOURCES, _os_reason(exc)) from None
        self._part = None
        return final, Scanned(os.fspath(final), found.fields, found.transfer_syntax, size)

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
