"""A fast path for the storage listener: the association's PDUs are read here.

Why: see :mod:`dimse_pdu`; through pynetdicom's receive path a C-MOVE into our
listener ran at 18 % of dcmtk getscu. pynetdicom still accepts the connection
and negotiates the association; then, for an accepted association:

* on ``EVT_REQUESTED`` (the A-ASSOCIATE-RQ has been read; the peer waits for our
  answer, so nothing else is in flight) pynetdicom's DUL reader is switched off;
* on ``EVT_ESTABLISHED`` (in the association's own thread, before pynetdicom's
  reactor starts) :func:`serve` reads the PDUs: C-STORE-RQ data sets go
  fragment by fragment to ``.part`` files (:class:`dimse_fastget.Exchange`),
  C-ECHO-RQ is answered, and A-RELEASE-RQ is answered with A-RELEASE-RP;
* the association is then marked released (or aborted) and pynetdicom's DUL
  thread is stopped; pynetdicom closes the connection as usual.

Each C-STORE-RSP is sent only once its instance is indexed (see
:mod:`dimse_receive`). A peer that sends a PDU longer than we announced, a
malformed PDV, an unexpected command, nothing for ``idle_timeout`` seconds, or sends
a PDU so slowly that it is not complete within ``idle_timeout`` plus one second per
32 KiB, is logged (naming it: ``C-STORE from <AE> (<host>:<port>)``) and aborted.

If the association is not established the reader is switched back on.
"""

from __future__ import annotations

import contextlib
import logging
import struct
from typing import Any

from dicomstation.nodes.dimse_fastget import Exchange
from dicomstation.nodes.dimse_instance import printable
from dicomstation.nodes.dimse_owned import OwnedAssociation
from dicomstation.nodes.dimse_pdu import (
    A_ABORT,
    A_RELEASE_RQ,
    P_DATA,
    PduError,
    PduReader,
    local_max_pdu,
    pdvs,
)
from dicomstation.nodes.dimse_receive import Receiver
from dicomstation.nodes.dimse_transport import use_fast

__all__ = ["FastStorageSCP", "describe_peer"]

_LOG = logging.getLogger(__name__)
_A_RELEASE_RP = struct.pack(">BBII", 0x06, 0, 4, 0)
_A_ABORT = struct.pack(">BBIBBBB", 0x07, 0, 4, 0, 0, 0, 0)  # source: service user


class FastStorageSCP:
    """pynetdicom event handlers that serve accepted storage associations ourselves.

    ``idle_timeout`` bounds every wait for the peer's next bytes (an idle
    association is aborted after it).
    """

    def __init__(self, receiver: Receiver, idle_timeout: float | None) -> None:
        self.receiver = receiver
        self.timeout = idle_timeout

    def handlers(self) -> list[tuple[Any, Any]]:
        """The (event, handler) pairs to bind on the listener's AE."""
        from pynetdicom import evt

        return [
            (evt.EVT_REQUESTED, self.on_requested),
            (evt.EVT_ESTABLISHED, self.serve),
            (evt.EVT_REJECTED, self.on_not_established),
            (evt.EVT_ABORTED, self.on_not_established),
        ]

    @staticmethod
    def on_requested(event: Any) -> None:
        """Switch pynetdicom's socket reader off before the association is accepted.

        Nothing else is in flight (the peer waits for our answer), so the reader
        is switched off without waiting for it to notice.
        """
        assoc = event.assoc
        if use_fast(assoc) and isinstance(assoc, OwnedAssociation):
            assoc.dul.hand_over(None, wait=False)
            assoc.served_by_us = True

    @staticmethod
    def on_not_established(event: Any) -> None:
        """Give the reader back if the association ends without our loop."""
        assoc = event.assoc
        if isinstance(assoc, OwnedAssociation) and assoc.served_by_us:
            assoc.served_by_us = False
            assoc.dul.take_back()

    def serve(self, event: Any) -> None:
        """Serve the association until the peer releases or aborts it."""
        assoc = event.assoc
        if not isinstance(assoc, OwnedAssociation) or not assoc.served_by_us:
            return
        assoc.served_by_us = False
        sock = assoc.raw_socket()
        sock.settimeout(self.timeout)
        calling, peer = describe_peer(assoc.requestor, self.receiver.operation)
        exchange = Exchange(
            sock,
            self.receiver,
            {int(cx.context_id or 0): cx.transfer_syntax[0] for cx in assoc.accepted_contexts},
            int(assoc.dimse.maximum_pdu_size or 0),
            peer,
            calling,
            classes={
                int(cx.context_id or 0): str(cx.abstract_syntax) for cx in assoc.accepted_contexts
            },
            peer=peer,
            serving=True,
        )
        reader = PduReader(sock, local_max_pdu(assoc), pdu_timeout=self.timeout)
        released = False
        try:
            released = _loop(reader, exchange)
        except Exception as exc:  # a broken peer must not take the listener down
            _LOG.warning("%s: %s; association aborted", peer, self._why(exc))
            exchange.abandon()
            _send_quietly(sock, _A_ABORT)
        finally:
            reader.close()
            _end(assoc, released)

    def _why(self, exc: Exception) -> str:
        if isinstance(exc, TimeoutError):
            return f"idle, or a PDU trickled, for more than {self.timeout:g}s"
        if isinstance(exc, PduError):
            return str(exc)
        if isinstance(exc, ConnectionResetError):
            return "the connection was closed without a release"
        return f"{type(exc).__name__}: {exc}"


def describe_peer(requestor: Any, operation: str) -> tuple[str, str]:
    """The calling AE title (printable) and ``"<operation> from <AE> (<host>:<port>)"``."""
    calling = printable(str(requestor.ae_title).strip(), 16).replace("\\", "?")
    return calling, f"{operation} from {calling} ({requestor.address}:{requestor.port})"


def _loop(reader: PduReader, exchange: Exchange) -> bool:
    """Read PDUs until release (True) or abort (False)."""
    while True:
        kind, body = reader.pdu()
        if kind == P_DATA:
            for context_id, control, fragment in pdvs(body):
                exchange.feed(context_id, control, fragment)
        elif kind == A_RELEASE_RQ:
            exchange.sock.sendall(_A_RELEASE_RP)
            return True
        elif kind == A_ABORT:
            exchange.abandon()
            return False
        else:
            raise ConnectionAbortedError(f"unexpected PDU type 0x{kind:02X}")


def _send_quietly(sock: Any, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(data)


def _end(assoc: OwnedAssociation, released: bool) -> None:
    """Tell pynetdicom the association is over and stop its DUL thread."""
    assoc.end_served(released)
