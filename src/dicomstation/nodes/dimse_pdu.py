"""Low-level DICOM upper-layer framing for the fast paths (PS3.8 9.3, PS3.7 E).

Why this exists: pynetdicom moves every P-DATA-TF PDU through queues and its
Python state machine (~150 us per PDU, plus a 1 ms idle poll before each read).
Peers usually accept 16 KB PDUs, so a 150 MB series is ~9600 PDUs, and through
pynetdicom dicomstation ran at 42 % of dcmtk storescu and 37 % of getscu. The
fast paths (:mod:`dimse_fastsend`, :mod:`dimse_fastget`) keep pynetdicom for
association negotiation, release and abort, and for one exchange take the socket
over with :func:`own_socket`: the association reactor is paused (as pynetdicom's
own ``send_*`` do) and pynetdicom's DUL reader is told there is nothing to read.

That take-over lives in our own association subclasses (:mod:`dimse_owned`,
version-gated against the pinned pynetdicom minor); :func:`fast_path_available`
is true only for those, and callers fall back to pynetdicom's ``send_c_store`` /
``send_c_get`` otherwise.
"""

from __future__ import annotations

import enum
import struct
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from pydicom.datadict import tag_for_keyword

from dicomstation.nodes.dimse_owned import OwnedAssociation

__all__ = [
    "AFFECTED_SOP_CLASS",
    "AFFECTED_SOP_INSTANCE",
    "COMMAND_FIELD",
    "COMPLETED",
    "DATA",
    "DATA_LAST",
    "DATA_SET_PRESENT",
    "DATA_SET_TYPE",
    "DEFAULT_PDU_LIMIT",
    "ERROR_COMMENT",
    "FAILED",
    "MESSAGE_ID",
    "NO_DATA_SET",
    "PRIORITY",
    "PRIORITY_LOW",
    "P_DATA",
    "REMAINING",
    "RESPONDED_TO",
    "STATUS",
    "WARNINGS",
    "Command",
    "PduError",
    "PduReader",
    "encode_command",
    "fast_path_available",
    "frame_data",
    "local_max_pdu",
    "own_socket",
    "parse_command",
    "send_message",
    "text_field",
    "uid_value",
    "us_field",
    "us_value",
]

PDU_HEADER = struct.Struct(">BBI")  # PDU type, reserved, PDU length
PDV_HEADER = struct.Struct(">IBB")  # item length, presentation context ID, control header
_ELEMENT = struct.Struct("<HHI")  # implicit VR: group, element, value length
_US = struct.Struct("<H")
_UL = struct.Struct("<I")
_UNLIMITED_FRAGMENT = 1024 * 1024
_READ_BUFFER = 1024 * 1024
#: PDUs other than P-DATA-TF are small (A-RELEASE, A-ABORT: 4 bytes; an association
#: request/answer arriving mid-association is refused anyway).
_OTHER_PDU_LIMIT = 64 * 1024
#: Used when an association announced no limit (we always announce one).
DEFAULT_PDU_LIMIT = 4 * 1024 * 1024
COMMAND, COMMAND_LAST, DATA, DATA_LAST = 0x01, 0x03, 0x00, 0x02
P_DATA, A_RELEASE_RQ, A_ABORT = 0x04, 0x05, 0x07
NO_DATA_SET = 0x0101


def _element(keyword: str) -> int:
    """The element number (group 0000) of a command field, from pydicom's dictionary."""
    tag = tag_for_keyword(keyword)
    if tag is None or tag >> 16:  # pragma: no cover - pydicom's dictionary changed
        raise AssertionError(f"{keyword} is not a command element")
    return int(tag) & 0xFFFF


class Command(enum.IntEnum):
    """Command Field (0000,0100) values used by the fast paths (PS3.7 E.1-1)."""

    C_STORE_RQ = 0x0001
    C_STORE_RSP = 0x8001
    C_GET_RQ = 0x0010
    C_GET_RSP = 0x8010
    C_ECHO_RQ = 0x0030
    C_ECHO_RSP = 0x8030
    C_CANCEL_RQ = 0x0FFF


#: Command elements (group 0000), by their pydicom keywords.
AFFECTED_SOP_CLASS = _element("AffectedSOPClassUID")
COMMAND_FIELD = _element("CommandField")
MESSAGE_ID = _element("MessageID")
RESPONDED_TO = _element("MessageIDBeingRespondedTo")
PRIORITY = _element("Priority")
DATA_SET_TYPE = _element("CommandDataSetType")
STATUS = _element("Status")
ERROR_COMMENT = _element("ErrorComment")
AFFECTED_SOP_INSTANCE = _element("AffectedSOPInstanceUID")
COMPLETED = _element("NumberOfCompletedSuboperations")
FAILED = _element("NumberOfFailedSuboperations")
WARNINGS = _element("NumberOfWarningSuboperations")
REMAINING = _element("NumberOfRemainingSuboperations")
#: Priority (0000,0700) LOW, as pynetdicom sends it; Command Data Set Type "present".
PRIORITY_LOW, DATA_SET_PRESENT = 0x0002, 0x0001


def fast_path_available(assoc: Any) -> bool:
    """True when ``assoc`` is one of ours (:class:`dimse_owned.OwnedAssociation`)."""
    return isinstance(assoc, OwnedAssociation)


def local_max_pdu(assoc: Any) -> int:
    """The maximum PDU length this side announced for ``assoc`` (what the peer may send)."""
    try:
        return int(assoc.ae.maximum_pdu_size or 0) or DEFAULT_PDU_LIMIT
    except (AttributeError, TypeError, ValueError):
        return DEFAULT_PDU_LIMIT


def own_socket(assoc: OwnedAssociation, timeout: float | None) -> AbstractContextManager[Any]:
    """Pause the reactor and pynetdicom's socket reader; yield the raw socket.

    See :meth:`dimse_owned.OwnedAssociation.own_socket`: only our own association
    objects can be taken over (``TypeError`` for others).
    """
    if not isinstance(assoc, OwnedAssociation):
        raise TypeError("only dicomstation's own associations (dimse_owned) can be taken over")
    return assoc.own_socket(timeout)


class PduError(Exception):
    """The peer broke the upper-layer protocol (PDU too long, malformed PDV...): abort.

    Raised before anything more is read from the socket, so a hostile length never
    costs memory. Callers translate it (``ProtocolError`` for a C-GET, a log line
    and an A-ABORT for the listener).
    """


class PduReader:
    """Whole PDUs from a socket, read into one large buffer of ours.

    A PDU's body is a view into that buffer, valid until the next :meth:`pdu` call:
    data set fragments go from the socket to their file with no copy in between.

    Parameters
    ----------
    sock : socket
        The association's socket (its timeout bounds each wait for bytes).
    max_pdu : int
        The maximum P-DATA-TF length we announced (our Maximum Length Received):
        a longer PDU raises :class:`PduError` before its body is read.
    pdu_timeout : float, optional
        Each :meth:`pdu` call must be complete within this many seconds plus one
        second per ``min_rate`` bytes of the PDU, else ``TimeoutError``: a peer that
        trickles bytes cannot hold the association (None: no such deadline).
    min_rate : int
        See ``pdu_timeout``.
    """

    def __init__(
        self,
        sock: Any,
        max_pdu: int = DEFAULT_PDU_LIMIT,
        *,
        pdu_timeout: float | None = None,
        min_rate: int = 32 * 1024,
    ) -> None:
        self._sock = sock
        self._buffer = bytearray(_READ_BUFFER)
        self._view = memoryview(self._buffer)
        self._start = self._end = 0  # unread bytes: self._buffer[start:end]
        self.max_pdu = max_pdu or DEFAULT_PDU_LIMIT
        self._pdu_timeout = pdu_timeout
        self._min_rate = min_rate
        self._idle_timeout = sock.gettimeout() if pdu_timeout is not None else None

    def _room(self, count: int) -> None:
        """Make room for ``count`` bytes from ``_start`` (the last body's view is then stale)."""
        left = self._end - self._start
        if count > len(self._buffer):  # a PDU longer than the buffer: a larger one
            bigger = bytearray(count)
            bigger[:left] = self._view[self._start : self._end]
            self._buffer, self._view = bigger, memoryview(bigger)
        elif left:
            self._buffer[:left] = self._buffer[self._start : self._end]  # copied first
        self._start, self._end = 0, left

    def _fill(self, count: int, deadline: float | None) -> None:
        """Read until ``count`` bytes from ``_start`` are buffered."""
        if self._start + count > len(self._buffer):
            self._room(count)
        while self._end - self._start < count:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("a PDU was not complete within its deadline")
                idle = self._idle_timeout
                self._sock.settimeout(left if idle is None else min(left, idle))
            got = self._sock.recv_into(self._view[self._end :])
            if not got:
                raise ConnectionResetError("the peer closed the connection")
            self._end += got

    def pdu(self) -> tuple[int, memoryview]:
        """The next PDU: (type, body); the body is valid until the next call.

        Raises
        ------
        PduError
            If the PDU is longer than allowed (its body is not read).
        TimeoutError
            If the peer sends nothing for the socket's timeout, or (``pdu_timeout``)
            does not complete the PDU in time.
        """
        deadline = None
        if self._pdu_timeout is not None:
            deadline = time.monotonic() + self._pdu_timeout
        self._fill(6, deadline)
        kind, _reserved, length = PDU_HEADER.unpack_from(self._buffer, self._start)
        limit = self.max_pdu if kind == P_DATA else _OTHER_PDU_LIMIT
        if length > limit:
            raise PduError(
                f"PDU of type 0x{kind:02X} is {length} bytes long, more than the "
                f"{limit} bytes negotiated"
            )
        if deadline is not None:
            deadline += length / self._min_rate
        self._start += 6
        self._fill(length, deadline)
        body = self._view[self._start : self._start + length]
        self._start += length
        return kind, body

    def close(self) -> None:
        """Drop the buffer (the socket stays open)."""
        self._buffer = bytearray()
        self._view = memoryview(self._buffer)
        self._start = self._end = 0


def pdvs(body: bytes | memoryview) -> Iterator[tuple[int, int, memoryview]]:
    """(context ID, control header, fragment) of each PDV item of a P-DATA-TF body.

    Fragments are views into ``body``.

    Raises
    ------
    PduError
        If an item's length does not fit the PDU (PS3.8 9.3.5.1).
    """
    view = memoryview(body)
    offset, size = 0, len(view)
    while offset < size:
        if offset + 6 > size:
            raise PduError("P-DATA-TF PDU ends inside a PDV item header")
        length, context_id, control = PDV_HEADER.unpack_from(view, offset)
        if length < 2 or offset + 4 + length > size:
            raise PduError(f"PDV item length {length} does not fit its P-DATA-TF PDU")
        yield context_id, control, view[offset + 6 : offset + 4 + length]
        offset += 4 + length


def _pdu(context_id: int, control: int, fragment: bytes | memoryview) -> bytes:
    size = len(fragment) + 2
    return (
        PDU_HEADER.pack(P_DATA, 0, size + 4)
        + PDV_HEADER.pack(size, context_id, control)
        + (bytes(fragment))
    )


def frame_data(context_id: int, block: bytes, size: int, *, last: bool) -> bytes:
    """Frame ``block`` as consecutive data-set PDUs (one write for several PDUs)."""
    view = memoryview(block)
    parts: list[bytes | memoryview] = []
    for start in range(0, len(block), size):
        chunk = view[start : start + size]
        final = last and start + size >= len(block)
        n = len(chunk) + 2
        parts.append(
            PDU_HEADER.pack(P_DATA, 0, n + 4)
            + PDV_HEADER.pack(n, context_id, DATA_LAST if final else DATA)
        )
        parts.append(chunk)
    return b"".join(parts)


def fragment_size(max_pdu: int) -> int:
    """Largest PDV fragment for the peer's maximum PDU length (0: unlimited)."""
    return max_pdu - 6 if max_pdu else _UNLIMITED_FRAGMENT


def send_message(
    sock: Any, context_id: int, command: bytes, dataset: bytes | None, max_pdu: int
) -> None:
    """Send a DIMSE message (command, then data set if any) as P-DATA-TF PDUs."""
    size = fragment_size(max_pdu)
    for start in range(0, len(command), size):
        chunk = command[start : start + size]
        last = start + size >= len(command)
        sock.sendall(_pdu(context_id, COMMAND_LAST if last else COMMAND, chunk))
    if dataset is not None:
        sock.sendall(frame_data(context_id, dataset, size, last=True))


def uid_value(value: str) -> bytes:
    """A UI value, null-padded to even length."""
    raw = value.encode("ascii")
    return raw + b"\x00" * (len(raw) % 2)


def us_value(value: int) -> bytes:
    """A US value."""
    return _US.pack(value)


def encode_command(fields: dict[int, bytes]) -> bytes:
    """A command set (group 0000, Implicit VR LE) from ``{element: encoded value}``.

    Encoded here rather than with pydicom: a handful of fixed elements, and
    encoding a Dataset per message cost more than the message's own transfer.
    """
    body = b"".join(_ELEMENT.pack(0, tag, len(fields[tag])) + fields[tag] for tag in sorted(fields))
    return _ELEMENT.pack(0, 0, 4) + _UL.pack(len(body)) + body


def parse_command(raw: bytes) -> dict[int, bytes]:
    """A command set (Implicit VR LE) as ``{element: value bytes}``."""
    fields: dict[int, bytes] = {}
    offset = 0
    while offset + 8 <= len(raw):
        _group, element, length = _ELEMENT.unpack_from(raw, offset)
        offset += 8
        fields[element] = raw[offset : offset + length]
        offset += length
    return fields


def us_field(fields: dict[int, bytes], element: int, default: int = 0) -> int:
    """A US element of a parsed command."""
    value = fields.get(element)
    return int(_US.unpack(value[:2])[0]) if value and len(value) >= 2 else default


def text_field(fields: dict[int, bytes], element: int) -> str:
    """A text element (UI, LO...) of a parsed command, without padding."""
    return fields.get(element, b"").decode("ascii", "replace").rstrip("\x00 ")
