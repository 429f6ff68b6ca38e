"""A fast path for C-GET: this module reads the association's PDUs itself for one exchange.

Why: pynetdicom decodes every incoming P-DATA-TF PDU through queues and its
Python state machine (~150 us per PDU) and keeps each data set in memory; peers
send 16 KB PDUs, so a 150 MB series is ~9600 PDUs and dicomstation ran at 37 %
of dcmtk getscu. Here, while the association reactor is paused and pynetdicom's
DUL reader is switched off (its transport check answers "nothing to read"), the
PDUs of one C-GET are read with a buffered socket reader: C-STORE sub-operation
data sets are written fragment by fragment straight to their ``.part`` file (no
re-encoding, never whole in memory), each is answered with a C-STORE-RSP, and
the C-GET-RSPs are decoded until the final one. Associations, negotiation,
release and abort stay pynetdicom's.

It relies on pynetdicom 3.0 internals (``dul._is_transport_event``,
``dul._idle_timer``, the reactor checkpoint, ``dul.socket``);
:func:`fast_get_available` checks them and :mod:`dimse_retrieve` falls back to
``send_c_get`` when they are missing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION
from pynetdicom.dsutils import decode, encode

from dicomstation.errors import ProtocolError
from dicomstation.nodes.base import CancelToken
from dicomstation.nodes.dimse_errors import StatusCategory, status_category
from dicomstation.nodes.dimse_pdu import (
    A_ABORT,
    A_RELEASE_RQ,
    NO_DATA_SET,
    P_DATA,
    PduReader,
    encode_command,
    fast_path_available,
    own_socket,
    parse_command,
    pdvs,
    send_message,
    text_field,
    uid_value,
    us_field,
    us_value,
)
from dicomstation.nodes.dimse_receive import Receiver

__all__ = ["Exchange", "GetResult", "fast_get", "fast_get_available", "file_meta"]

fast_get_available = fast_path_available

_C_STORE_RQ, _C_GET_RSP, _C_STORE_RSP, _C_GET_RQ, _C_CANCEL_RQ = (
    0x0001,
    0x8010,
    0x8001,
    0x0010,
    0x0FFF,
)
_SUCCESS, _OUT_OF_RESOURCES = 0x0000, 0xA700
_C_ECHO_RQ, _C_ECHO_RSP = 0x0030, 0x8030
_EXPLICIT_SHORT = struct.Struct("<HH2sH")
_EXPLICIT_LONG = struct.Struct("<HH2s2xI")
_us = us_field
_text = text_field


def _meta_element(element: int, vr: bytes, value: bytes) -> bytes:
    if vr == b"OB":
        return _EXPLICIT_LONG.pack(0x0002, element, vr, len(value)) + value
    return _EXPLICIT_SHORT.pack(0x0002, element, vr, len(value)) + value


def file_meta(sop_class: str, sop_uid: str, syntax: str, source_ae: str) -> bytes:
    """Encoded File Meta Information (PS3.10 7.1), Explicit VR Little Endian."""

    def text(value: str, pad: bytes) -> bytes:
        raw = value.encode("ascii")
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
class GetResult:
    """The final C-GET-RSP: its status and the failed SOP Instance UIDs it listed."""

    status: Dataset
    failed: tuple[str, ...]
    cancelled: bool


@dataclass
class _Store:
    """A C-STORE sub-operation being received."""

    context_id: int
    msg_id: int
    sop_class: str
    sop_uid: str
    part: Path | None = None
    handle: BinaryIO | None = None
    size: int = 0
    status: int = _SUCCESS


@dataclass
class Exchange:
    """State of one C-GET exchange, or of a storage SCP association (``serving``)."""

    sock: Any
    receiver: Receiver
    syntaxes: dict[int, UID]
    max_pdu: int
    server: str
    source_ae: str
    command: bytearray = field(default_factory=bytearray)
    store: _Store | None = None
    response: dict[int, bytes] | None = None
    identifier: bytearray = field(default_factory=bytearray)
    final: GetResult | None = None
    cancel_sent: bool = False
    serving: bool = False  # as a storage SCP (listener): also answer C-ECHO

    # -- dispatch --------------------------------------------------------------------
    def feed(self, context_id: int, control: int, fragment: bytes) -> None:
        if control & 0x01:
            self.command += fragment
            if control & 0x02:
                command = parse_command(bytes(self.command))
                self.command = bytearray()
                self._on_command(context_id, command)
        elif self.store is not None:
            self._store_fragment(fragment, last=bool(control & 0x02))
        elif self.response is not None:
            self.identifier += fragment
            if control & 0x02:
                found = decode(
                    BytesIO(bytes(self.identifier)),
                    self.syntaxes[context_id].is_implicit_VR,
                    self.syntaxes[context_id].is_little_endian,
                )
                self._on_response(self.response, found)
        else:
            raise ProtocolError(
                "data set fragment without a command", server=self.server, operation="C-GET"
            )

    def _on_command(self, context_id: int, command: dict[int, bytes]) -> None:
        field_ = _us(command, 0x0100)
        has_data = _us(command, 0x0800, NO_DATA_SET) != NO_DATA_SET
        if field_ == _C_STORE_RQ and has_data:
            self._start_store(context_id, command)
        elif field_ == _C_GET_RSP:
            self.response, self.identifier = command, bytearray()
            if not has_data:
                self._on_response(command, None)
        elif field_ == _C_ECHO_RQ and self.serving:
            reply = encode_command(
                {
                    0x0002: uid_value(_text(command, 0x0002)),
                    0x0100: us_value(_C_ECHO_RSP),
                    0x0120: us_value(_us(command, 0x0110)),
                    0x0800: us_value(NO_DATA_SET),
                    0x0900: us_value(_SUCCESS),
                }
            )
            send_message(self.sock, context_id, reply, None, self.max_pdu)
        else:
            raise ProtocolError(
                f"unexpected DIMSE command 0x{field_:04X} during a C-GET",
                server=self.server,
                operation="C-GET",
            )

    # -- C-STORE sub-operations ------------------------------------------------------
    def _start_store(self, context_id: int, command: dict[int, bytes]) -> None:
        store = _Store(
            context_id, _us(command, 0x0110), _text(command, 0x0002), _text(command, 0x1000)
        )
        self.store = store
        if not self.receiver.claim(store.sop_uid):
            return
        meta = file_meta(
            store.sop_class, store.sop_uid, str(self.syntaxes[context_id]), self.source_ae
        )
        try:
            store.part, store.handle = self.receiver.open_part(store.sop_uid, meta)
        except OSError as exc:
            self.receiver.reject(store.sop_uid, f"cannot write received instance: {exc}")
            store.status = _OUT_OF_RESOURCES

    def _store_fragment(self, fragment: bytes, *, last: bool) -> None:
        store = self.store
        assert store is not None
        store.size += len(fragment)
        if store.handle is not None:
            try:
                store.handle.write(fragment)
            except OSError as exc:
                self._drop(store, f"cannot write received instance: {exc}")
        if last:
            self._finish_store(store)

    def _drop(self, store: _Store, reason: str) -> None:
        if store.handle is not None:
            store.handle.close()
            store.handle = None
        if store.part is not None:
            store.part.unlink(missing_ok=True)
            store.part = None
        self.receiver.reject(store.sop_uid, reason)
        store.status = _OUT_OF_RESOURCES

    def _finish_store(self, store: _Store) -> None:
        self.store = None
        if store.handle is not None and store.part is not None:
            try:
                store.handle.close()
                self.receiver.accept(store.part, store.sop_uid, store.size)
            except OSError as exc:
                self._drop(store, f"cannot store received instance: {exc}")
        command = encode_command(
            {
                0x0002: uid_value(store.sop_class),
                0x0100: us_value(_C_STORE_RSP),
                0x0120: us_value(store.msg_id),
                0x0800: us_value(NO_DATA_SET),
                0x0900: us_value(store.status),
                0x1000: uid_value(store.sop_uid),
            }
        )
        send_message(self.sock, store.context_id, command, None, self.max_pdu)

    def abandon(self) -> None:
        """Remove a half-received instance (the exchange failed mid-way)."""
        if self.store is not None and self.store.handle is not None:
            self.store.handle.close()
            if self.store.part is not None:
                self.store.part.unlink(missing_ok=True)
            self.receiver.reject(self.store.sop_uid, "association ended mid-instance")

    # -- C-GET responses -------------------------------------------------------------
    def _on_response(self, command: dict[int, bytes], identifier: Dataset | None) -> None:
        self.response = None
        code = _us(command, 0x0900)
        if status_category(code, "C-GET") is StatusCategory.PENDING:
            return
        status = Dataset()
        status.Status = code
        if 0x0902 in command:
            status.ErrorComment = _text(command, 0x0902)
        for element, keyword in (
            (0x1021, "NumberOfCompletedSuboperations"),
            (0x1022, "NumberOfFailedSuboperations"),
            (0x1023, "NumberOfWarningSuboperations"),
        ):
            if element in command:
                setattr(status, keyword, _us(command, element))
        failed = identifier.get("FailedSOPInstanceUIDList", "") if identifier else ""
        uids = [failed] if isinstance(failed, str) else list(failed)
        self.final = GetResult(status, tuple(str(u) for u in uids if u), self.cancel_sent)


def fast_get(
    assoc: Any,
    identifier: Dataset,
    model: str,
    receiver: Receiver,
    *,
    server: str,
    source_ae: str,
    cancel: CancelToken | None,
    timeout: float | None = None,
    msg_id: int = 1,
) -> GetResult:
    """Run one C-GET on ``assoc`` with our own PDU reader; return the final response.

    Raises
    ------
    ProtocolError
        If the peer sends something a C-GET exchange cannot contain.
    OSError
        Socket errors, timeouts and peer aborts (``ConnectionAbortedError``); the
        caller maps them with :func:`dimse_errors.socket_error` and aborts.
    """
    accepted = {int(cx.context_id): cx for cx in assoc.accepted_contexts}
    get_cx = next(cx for cx in accepted.values() if cx.abstract_syntax == model)
    syntax = get_cx.transfer_syntax[0]
    max_pdu = int(assoc.dimse.maximum_pdu_size or 0)
    with own_socket(assoc, timeout) as sock:
        exchange = Exchange(
            sock,
            receiver,
            {k: cx.transfer_syntax[0] for k, cx in accepted.items()},
            max_pdu,
            server,
            source_ae,
        )
        command = encode_command(
            {
                0x0002: uid_value(model),
                0x0100: us_value(_C_GET_RQ),
                0x0110: us_value(msg_id),
                0x0700: us_value(2),
                0x0800: us_value(1),
            }
        )
        data = encode(
            identifier, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated
        )
        send_message(sock, int(get_cx.context_id), command, data, max_pdu)
        reader = PduReader(sock)
        try:
            while exchange.final is None:
                _step(reader, exchange, server)
                if cancel is not None and cancel.cancelled and not exchange.cancel_sent:
                    _send_cancel(exchange, int(get_cx.context_id), msg_id)
        except BaseException:
            exchange.abandon()
            raise
        finally:
            reader.close()
    assert exchange.final is not None
    return exchange.final


def _step(reader: PduReader, exchange: Exchange, server: str) -> None:
    kind, body = reader.pdu()
    if kind == P_DATA:
        for context_id, control, fragment in pdvs(body):
            exchange.feed(context_id, control, fragment)
    elif kind in (A_ABORT, A_RELEASE_RQ):
        raise ConnectionAbortedError("the peer aborted the association")  # see socket_error
    else:
        raise ProtocolError(
            f"unexpected PDU type 0x{kind:02X} during a C-GET", server=server, operation="C-GET"
        )


def _send_cancel(exchange: Exchange, context_id: int, msg_id: int) -> None:
    command = encode_command(
        {0x0100: us_value(_C_CANCEL_RQ), 0x0120: us_value(msg_id), 0x0800: us_value(NO_DATA_SET)}
    )
    send_message(exchange.sock, context_id, command, None, exchange.max_pdu)
    exchange.cancel_sent = True
