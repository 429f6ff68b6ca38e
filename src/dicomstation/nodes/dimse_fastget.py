"""A fast path for C-GET: this module reads the association's PDUs itself for one exchange.

Why: pynetdicom decodes every incoming P-DATA-TF PDU through queues and its
Python state machine (~150 us per PDU) and keeps each data set in memory; peers
send 16 KB PDUs, so a 150 MB series is ~9600 PDUs and dicomstation ran at 37 %
of dcmtk getscu. Here, while the association reactor is paused and pynetdicom's
DUL reader is switched off (its transport check answers "nothing to read"), the
PDUs of one C-GET are read into a buffer of ours: C-STORE sub-operation
data sets are written fragment by fragment straight to their ``.part`` file (no
re-encoding, never whole in memory) through a
:class:`~dicomstation.nodes.dimse_receive.Incoming` (files named by us, data set
checked), each is answered with a C-STORE-RSP once its file is safe on disk
(fsynced; or with a failure status and a reason) and indexed later on this
thread, between two sub-operations, in batches of up to 512
(:meth:`~dicomstation.nodes.dimse_receive.Receiver.drain_if_full`), and the
C-GET-RSPs are decoded until the final one. PDUs longer
than we announced, malformed PDV items and oversized command sets end the
exchange (``ProtocolError``; the association is aborted). Associations,
negotiation, release and abort stay pynetdicom's.

It relies on pynetdicom 3.0 internals (``dul._is_transport_event``,
``dul._idle_timer``, the reactor checkpoint, ``dul.socket``);
:func:`fast_get_available` checks them and :mod:`dimse_retrieve` falls back to
``send_c_get`` when they are missing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom.dsutils import decode, encode
from pynetdicom.status import Status

from dicomstation.errors import ProtocolError
from dicomstation.nodes.base import CancelToken
from dicomstation.nodes.dimse_errors import StatusCategory, status_category
from dicomstation.nodes.dimse_instance import Incoming, StoreOutcome, StoreRequest, file_meta
from dicomstation.nodes.dimse_pdu import (
    A_ABORT,
    A_RELEASE_RQ,
    AFFECTED_SOP_CLASS,
    AFFECTED_SOP_INSTANCE,
    COMMAND_FIELD,
    COMPLETED,
    DATA_SET_PRESENT,
    DATA_SET_TYPE,
    ERROR_COMMENT,
    FAILED,
    MESSAGE_ID,
    NO_DATA_SET,
    P_DATA,
    PRIORITY,
    PRIORITY_LOW,
    REMAINING,
    RESPONDED_TO,
    STATUS,
    WARNINGS,
    Command,
    PduError,
    PduReader,
    encode_command,
    local_max_pdu,
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
from dicomstation.nodes.dimse_transport import use_fast

__all__ = ["Exchange", "GetResult", "fast_get", "fast_get_available", "file_meta"]

#: Whether a C-GET takes this path: the one transport choice, :func:`dimse_transport.use_fast`.
fast_get_available = use_fast

_C_STORE_RQ, _C_STORE_RSP = Command.C_STORE_RQ, Command.C_STORE_RSP
_C_GET_RQ, _C_GET_RSP, _C_CANCEL_RQ = Command.C_GET_RQ, Command.C_GET_RSP, Command.C_CANCEL_RQ
_SUCCESS = int(Status.SUCCESS)
_C_ECHO_RQ, _C_ECHO_RSP = Command.C_ECHO_RQ, Command.C_ECHO_RSP
_MAX_COMMAND = 64 * 1024  # a command set is a few hundred bytes
_MAX_IDENTIFIER = 16 * 1024 * 1024  # a C-GET-RSP identifier (failed UID lists)
_us = us_field
_text = text_field


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
    request: StoreRequest
    incoming: Incoming


@dataclass
class Exchange:
    """State of one C-GET exchange, or of a storage SCP association (``serving``).

    ``syntaxes`` and ``classes`` give each accepted presentation context's transfer
    syntax and abstract syntax; ``peer`` names the sender in messages. A peer that
    breaks the protocol raises :class:`PduError` (the caller aborts).
    """

    sock: Any
    receiver: Receiver
    syntaxes: dict[int, UID]
    max_pdu: int
    server: str
    source_ae: str
    classes: dict[int, str] = field(default_factory=dict)
    peer: str = ""
    command: bytearray = field(default_factory=bytearray)
    store: _Store | None = None
    response: dict[int, bytes] | None = None
    identifier: bytearray = field(default_factory=bytearray)
    final: GetResult | None = None
    cancel_sent: bool = False
    serving: bool = False  # as a storage SCP (listener): also answer C-ECHO

    # -- dispatch --------------------------------------------------------------------
    def feed(self, context_id: int, control: int, fragment: bytes | memoryview) -> None:
        if context_id not in self.syntaxes:
            raise PduError(f"presentation context {context_id} was not accepted")
        if control & 0x01:
            self._command_fragment(context_id, control, fragment)
        elif self.store is not None:
            if context_id != self.store.context_id:
                raise PduError("data set fragment on another presentation context")
            self.store.incoming.write(fragment)
            if control & 0x02:
                self._finish_store(self.store)
        elif self.response is not None:
            self.identifier += fragment
            if len(self.identifier) > _MAX_IDENTIFIER:
                raise PduError(f"C-GET-RSP identifier longer than {_MAX_IDENTIFIER} bytes")
            if control & 0x02:
                self._on_response(self.response, self._decode_identifier(context_id))
        else:
            raise PduError("data set fragment without a command")

    def _command_fragment(
        self, context_id: int, control: int, fragment: bytes | memoryview
    ) -> None:
        if self.store is not None:
            raise PduError("a command arrived before the previous data set ended")
        self.command += fragment
        if len(self.command) > _MAX_COMMAND:
            raise PduError(f"command set longer than {_MAX_COMMAND} bytes")
        if control & 0x02:
            command = parse_command(bytes(self.command))
            self.command = bytearray()
            self._on_command(context_id, command)

    def _decode_identifier(self, context_id: int) -> Dataset:
        syntax = self.syntaxes[context_id]
        try:
            found: Dataset = decode(
                BytesIO(bytes(self.identifier)), syntax.is_implicit_VR, syntax.is_little_endian
            )
        except Exception as exc:  # a garbled identifier is the peer's protocol error
            raise PduError(f"cannot decode the C-GET-RSP identifier ({exc})") from None
        return found

    def _on_command(self, context_id: int, command: dict[int, bytes]) -> None:
        field_ = _us(command, COMMAND_FIELD)
        has_data = _us(command, DATA_SET_TYPE, NO_DATA_SET) != NO_DATA_SET
        if field_ == _C_STORE_RQ and has_data:
            self._start_store(context_id, command)
        elif field_ == _C_GET_RSP and not self.serving:
            self.response, self.identifier = command, bytearray()
            if not has_data:
                self._on_response(command, None)
        elif field_ == _C_ECHO_RQ and self.serving:
            reply = encode_command(
                {
                    AFFECTED_SOP_CLASS: uid_value(_text(command, AFFECTED_SOP_CLASS)),
                    COMMAND_FIELD: us_value(_C_ECHO_RSP),
                    RESPONDED_TO: us_value(_us(command, MESSAGE_ID)),
                    DATA_SET_TYPE: us_value(NO_DATA_SET),
                    STATUS: us_value(_SUCCESS),
                }
            )
            send_message(self.sock, context_id, reply, None, self.max_pdu)
        else:
            where = "on a storage association" if self.serving else "during a C-GET"
            raise PduError(f"unexpected DIMSE command 0x{field_:04X} {where}")

    # -- C-STORE sub-operations ------------------------------------------------------
    def _start_store(self, context_id: int, command: dict[int, bytes]) -> None:
        request = StoreRequest(
            _text(command, AFFECTED_SOP_CLASS),
            _text(command, AFFECTED_SOP_INSTANCE),
            self.classes.get(context_id, ""),
            str(self.syntaxes[context_id]),
            self.source_ae,
            self.peer or self.server,
        )
        incoming = self.receiver.begin(request)
        self.store = _Store(context_id, _us(command, MESSAGE_ID), request, incoming)

    def _finish_store(self, store: _Store) -> None:
        self.store = None
        # a C-GET acknowledges once the file is safe on disk and indexes in batches;
        # a storage SCP answers once indexed
        outcome = store.incoming.finish(defer=not self.serving)
        self._respond(store, outcome)
        with contextlib.suppress(OSError):  # a failure shows with the next instance
            self.receiver.make_names()
        if not self.serving:
            self.receiver.drain_if_full()  # the rest when the C-GET ends (Receiver.wait)

    def _respond(self, store: _Store, outcome: StoreOutcome) -> None:
        fields = {
            AFFECTED_SOP_CLASS: uid_value(
                store.request.sop_class.encode("ascii", "replace").decode()
            ),
            COMMAND_FIELD: us_value(_C_STORE_RSP),
            RESPONDED_TO: us_value(store.msg_id),
            DATA_SET_TYPE: us_value(NO_DATA_SET),
            STATUS: us_value(outcome.status),
            AFFECTED_SOP_INSTANCE: uid_value(
                store.request.sop_uid.encode("ascii", "replace").decode()
            ),
        }
        comment = outcome.error_comment()
        if comment:
            raw = comment.encode("ascii")
            fields[ERROR_COMMENT] = raw + b" " * (len(raw) % 2)
        send_message(self.sock, store.context_id, encode_command(fields), None, self.max_pdu)

    def abandon(self) -> None:
        """Remove a half-received instance (the exchange failed mid-way)."""
        store, self.store = self.store, None
        if store is not None:
            store.incoming.abandon("the association ended before the data set was complete")

    # -- C-GET responses -------------------------------------------------------------
    def _on_response(self, command: dict[int, bytes], identifier: Dataset | None) -> None:
        self.response = None
        code = _us(command, STATUS)
        if status_category(code, "C-GET") is StatusCategory.PENDING:
            if self.receiver.expected is None and REMAINING in command:  # asked with no listing
                counts = (REMAINING, COMPLETED, FAILED, WARNINGS)
                self.receiver.expected = sum(_us(command, element) for element in counts)
            return
        status = Dataset()
        status.Status = code
        if ERROR_COMMENT in command:
            status.ErrorComment = _text(command, ERROR_COMMENT)
        for element, keyword in (
            (COMPLETED, "NumberOfCompletedSuboperations"),
            (FAILED, "NumberOfFailedSuboperations"),
            (WARNINGS, "NumberOfWarningSuboperations"),
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
            classes={k: str(cx.abstract_syntax) for k, cx in accepted.items()},
            peer=f"C-GET from {server}",
        )
        command = encode_command(
            {
                AFFECTED_SOP_CLASS: uid_value(model),
                COMMAND_FIELD: us_value(_C_GET_RQ),
                MESSAGE_ID: us_value(msg_id),
                PRIORITY: us_value(PRIORITY_LOW),
                DATA_SET_TYPE: us_value(DATA_SET_PRESENT),
            }
        )
        data = encode(
            identifier, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated
        )
        send_message(sock, int(get_cx.context_id), command, data, max_pdu)
        reader = PduReader(sock, local_max_pdu(assoc))
        try:
            while exchange.final is None:
                _step(reader, exchange, server)
                if cancel is not None and cancel.cancelled and not exchange.cancel_sent:
                    _send_cancel(exchange, int(get_cx.context_id), msg_id)
        except PduError as exc:
            exchange.abandon()
            raise ProtocolError(str(exc), server=server, operation="C-GET") from None
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
        {
            COMMAND_FIELD: us_value(_C_CANCEL_RQ),
            RESPONDED_TO: us_value(msg_id),
            DATA_SET_TYPE: us_value(NO_DATA_SET),
        }
    )
    send_message(exchange.sock, context_id, command, None, exchange.max_pdu)
    exchange.cancel_sent = True
