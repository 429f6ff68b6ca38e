"""Our own pynetdicom association objects: everything the fast paths need, on objects we create.

Why this exists: the fast paths (:mod:`dimse_pdu`) take an association's socket
over for one exchange, and every association needs Nagle off and a bound on
the PDU lengths pynetdicom reads. pynetdicom 3.0 has no public hook for any of
that (see docs/upstream/pynetdicom.md for the proposal that would make this
module unnecessary), so instead of setting attributes on pynetdicom's objects
from outside, the behaviour lives in subclasses that only we instantiate:

:class:`OwnedDUL`
    A ``DULServiceProvider`` whose transport check can be switched off
    (:meth:`~OwnedDUL.hand_over`: the socket reader then reads nothing, and says
    so once it has noticed) and back on (:meth:`~OwnedDUL.take_back`).
:class:`OwnedSocket`
    An ``AssociationSocket`` with TCP_NODELAY set and reads longer than our
    announced maximum PDU refused before any memory is taken.
:class:`OwnedAssociation`
    An ``Association`` with an :class:`OwnedDUL`; :meth:`~OwnedAssociation.own_socket`
    pauses its reactor and yields the raw socket, :meth:`~OwnedAssociation.end_served`
    marks an association our listener served to its end.
:class:`OwnedAE`, :class:`OwnedRequestHandler`
    Create the above for requested and accepted associations (``make_ae`` and
    the storage listener use them; ``OwnedAE.start_server`` passes the handler).

They override or call pynetdicom internals (``_is_transport_event``,
``_idle_timer``, ``_reactor_checkpoint``, ``_is_paused``,
``_validate_requested_contexts``, ``RequestHandler._create_association``), which
are only known to behave as relied on in the pinned minor version, so they are
used only when :data:`AVAILABLE` (pynetdicom ``3.0.x``; pyproject pins
``pynetdicom==3.0.*``); otherwise plain pynetdicom objects are used and the fast
paths are off. No module-level state of pynetdicom is changed, and no object
pynetdicom created for another application is touched.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from copy import copy, deepcopy
from datetime import datetime
from typing import Any

import pynetdicom
from pynetdicom import AE, evt
from pynetdicom._globals import DEFAULT_MAX_LENGTH, MODE_ACCEPTOR, MODE_REQUESTOR
from pynetdicom._handlers import standard_pdu_recv_handler, standard_pdu_sent_handler
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider
from pynetdicom.transport import AddressInformation, AssociationSocket, RequestHandler

__all__ = [
    "AVAILABLE",
    "CHECKED_PYNETDICOM",
    "OwnedAE",
    "OwnedAssociation",
    "OwnedDUL",
    "OwnedRequestHandler",
    "OwnedSocket",
]

#: The pynetdicom version prefix these subclasses were checked against.
CHECKED_PYNETDICOM = "3.0."
#: True when the installed pynetdicom is the checked minor version.
AVAILABLE = pynetdicom.__version__.startswith(CHECKED_PYNETDICOM)
#: How long the DUL thread waits per loop while its reader is handed over (it is
#: woken at once by take_back; a primitive to send waits at most this long).
_HANDED_OVER_WAIT = 0.05
#: Reads of PDUs longer than this are refused (what we announce; see dimse_assoc.MAX_PDU).
DEFAULT_READ_LIMIT = 4 * 1024 * 1024
_PYNETDICOM_LOG = logging.getLogger("pynetdicom")


class OwnedDUL(DULServiceProvider):
    """pynetdicom's DUL whose socket reader can be handed over to us and back."""

    def __init__(self, assoc: Association) -> None:
        super().__init__(assoc)
        self._handed_over = False
        self._reader_quiet = threading.Event()
        self._resumed = threading.Event()

    def _is_transport_event(self) -> bool:
        """pynetdicom's check for incoming data; "nothing to read" while handed over.

        The DUL thread calls it once per loop, after any PDU it was reading is
        complete, so once :attr:`_reader_quiet` is set no read of pynetdicom's is
        in progress or can start. While handed over the thread waits here (GIL
        released) instead of waking every millisecond: its polling cost about
        half the throughput of small C-STOREs on a busy machine.
        """
        if self._handed_over:
            self._reader_quiet.set()
            self._resumed.wait(_HANDED_OVER_WAIT)
            return False
        return bool(super()._is_transport_event())

    def hand_over(self, timeout: float | None, *, wait: bool = True) -> None:
        """Switch the socket reader off; with ``wait``, until the DUL thread has noticed.

        Raises
        ------
        TimeoutError
            When the DUL thread did not notice within ``timeout`` (the reader is
            switched back on).
        """
        self._reader_quiet.clear()
        self._resumed.clear()
        self._handed_over = True
        if not wait:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._reader_quiet.wait(0.05) and self.is_alive():
            if deadline is not None and time.monotonic() > deadline:
                self._handed_over = False
                self._resumed.set()
                raise TimeoutError("pynetdicom's reader did not hand the socket over")

    def take_back(self) -> None:
        """Switch the socket reader on again (and restart the idle timer)."""
        self._handed_over = False
        self._resumed.set()
        self._idle_timer.restart()

    @property
    def handed_over(self) -> bool:
        """True while the socket reader is switched off."""
        return self._handed_over


def _no_delay(sock: Any) -> None:
    """Nagle off: else the last segment of each message waits for a delayed ACK (~40 ms)."""
    with contextlib.suppress(AttributeError, OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class OwnedSocket(AssociationSocket):
    """pynetdicom's association socket with Nagle off and bounded PDU reads.

    pynetdicom reads a PDU as its 6-byte header, then ``recv(length)`` into one
    buffer whatever the length: a read longer than ``read_limit`` fails as a
    closed connection (pynetdicom then aborts) instead of growing memory to what
    the peer announced.
    """

    def __init__(
        self,
        assoc: Association,
        client_socket: socket.socket | None = None,
        address: AddressInformation | None = None,
        *,
        read_limit: int = DEFAULT_READ_LIMIT,
    ) -> None:
        super().__init__(assoc, client_socket=client_socket, address=address)
        self.read_limit = read_limit
        _no_delay(self.socket)

    def recv(self, nr_bytes: int) -> bytearray:
        """Read ``nr_bytes`` (refused when longer than :attr:`read_limit`)."""
        if nr_bytes > self.read_limit:
            raise ConnectionAbortedError(
                f"PDU of {nr_bytes} bytes is longer than the {self.read_limit} bytes negotiated"
            )
        return super().recv(nr_bytes)

    def shutdown(self) -> None:
        """Shut the connection down both ways (wakes any blocked read); close is pynetdicom's."""
        with contextlib.suppress(AttributeError, OSError):
            if self.socket is not None:
                self.socket.shutdown(socket.SHUT_RDWR)


class OwnedAssociation(Association):
    """pynetdicom's association with an :class:`OwnedDUL` and a socket take-over."""

    def __init__(self, ae: AE, mode: str) -> None:
        super().__init__(ae, mode)
        self.dul: OwnedDUL = OwnedDUL(self)
        self.network_timeout = self.ae.network_timeout  # its idle timer lives in the DUL
        #: Set by the fast listener for an association it serves (dimse_fastscp).
        self.served_by_us = False

    @contextlib.contextmanager
    def own_socket(self, timeout: float | None) -> Iterator[socket.socket]:
        """Pause the reactor and the DUL's reader; yield the raw socket.

        The reactor is paused the way pynetdicom's own ``send_*`` methods pause
        it; the reader hands over deterministically (:meth:`OwnedDUL.hand_over`).
        While the socket is ours every read or write waits at most ``timeout``
        seconds. Everything is given back on exit, also after an error.
        """
        self._reactor_checkpoint.clear()
        try:
            while not self._is_paused and self.is_established:
                time.sleep(0.0001)
            self.dul.hand_over(timeout)
            try:
                sock = self.raw_socket()
                previous = sock.gettimeout()
                sock.settimeout(timeout)
                try:
                    yield sock
                finally:
                    sock.settimeout(previous)
            finally:
                self.dul.take_back()
        finally:
            self._reactor_checkpoint.set()

    def raw_socket(self) -> socket.socket:
        """The association's OS socket (``ConnectionResetError`` once it is closed)."""
        wrapper = self.dul.socket
        sock = wrapper.socket if wrapper is not None else None
        if sock is None:
            raise ConnectionResetError("the association's connection is closed")
        return sock

    def end_served(self, released: bool) -> None:
        """Mark an association our listener served to its end; stop the DUL thread."""
        self.is_established = False
        self.is_released = released
        self.is_aborted = not released
        self.dul.kill_dul()

    def shutdown_socket(self) -> None:
        """Shut the connection down (the ACSE watchdog and over-cap refusals use it)."""
        sock = self.dul.socket
        if isinstance(sock, OwnedSocket):
            sock.shutdown()


_PDU_LOG_HANDLERS = (
    (evt.EVT_PDU_RECV, standard_pdu_recv_handler),
    (evt.EVT_PDU_SENT, standard_pdu_sent_handler),
)


@contextlib.contextmanager
def _quiet_negotiation(assoc: OwnedAssociation) -> Iterator[None]:
    """Negotiate without pynetdicom's PDU log handlers when its logger drops DEBUG.

    They format the whole A-ASSOCIATE-RQ/AC for DEBUG lines that are then dropped
    (~45 ms for a C-GET's 127 contexts). Bound again once negotiated: while they
    run, pynetdicom's own DIMSE path keeps the timing it was checked with (without
    them its reactor-pause race, docs/upstream/pynetdicom.md, struck far more often).
    """
    if _PYNETDICOM_LOG.isEnabledFor(logging.DEBUG):
        yield
        return
    bound = [pair for pair in _PDU_LOG_HANDLERS if _bound(assoc, *pair)]
    for event, handler in bound:
        assoc.unbind(event, handler)
    try:
        yield
    finally:
        for event, handler in bound:
            assoc.bind(event, handler)


def _bound(assoc: Association, event: Any, handler: Any) -> bool:
    handlers: Any = assoc.get_handlers(event)  # a notification event: [(handler, args)]
    return any(pair[0] is handler for pair in handlers)


class OwnedAE(AE):
    """An application entity whose requested associations are :class:`OwnedAssociation` s."""

    def associate(  # type: ignore[override]
        self,
        addr: str,
        port: int,
        contexts: list[Any] | None = None,
        ae_title: str = "ANY-SCP",
        max_pdu: int = DEFAULT_MAX_LENGTH,
        ext_neg: list[Any] | None = None,
        bind_address: tuple[str, int] | None = None,
        tls_args: Any = None,
        evt_handlers: list[Any] | None = None,
    ) -> OwnedAssociation:
        """As :meth:`pynetdicom.ae.ApplicationEntity.associate`, creating our own objects."""
        remote = AddressInformation.from_addr_port(addr, port)
        if bind_address is None:
            bind_address = ("::0", 0) if remote.address_family == socket.AF_INET6 else ("", 0)
        local = AddressInformation.from_tuple(bind_address)
        assoc = OwnedAssociation(self, MODE_REQUESTOR)
        assoc.name = f"RequestorThread@{datetime.now():%Y%m%d%H%M%S}"
        sock = OwnedSocket(assoc, address=local, read_limit=self.maximum_pdu_size or max_pdu)
        sock.tls_args = tls_args
        assoc.set_socket(sock)
        assoc.acceptor.ae_title = ae_title
        assoc.acceptor.address_info = remote
        requestor = assoc.requestor
        requestor.address_info = local
        requestor.ae_title = self.ae_title
        requestor.maximum_length = max_pdu
        requestor.implementation_class_uid = self.implementation_class_uid
        requestor.implementation_version_name = self.implementation_version_name
        for item in ext_neg or []:
            requestor.add_negotiation_item(item)
        assoc.requestor.requested_contexts = self._numbered(contexts or self.requested_contexts)
        for handler in evt_handlers or []:
            assoc.bind(*handler)
        with _quiet_negotiation(assoc):
            assoc.request()
        if assoc.is_established:
            assoc.start()
        return assoc

    def make_server(self, *args: Any, **kwargs: Any) -> Any:
        """As pynetdicom's, with :class:`OwnedRequestHandler` for accepted associations."""
        kwargs.setdefault("request_handler", OwnedRequestHandler)
        return super().make_server(*args, **kwargs)

    def _numbered(self, contexts: list[Any]) -> list[Any]:
        """Validated copies of the contexts with their IDs (1, 3, 5...).

        Shallow copies with their own transfer syntax list: a deep copy rebuilt
        (and re-validated) every UID, ~15 ms for a C-GET's 127 contexts; the UIDs
        are immutable strings and may be shared.
        """
        self._validate_requested_contexts(contexts)
        if not contexts:
            raise RuntimeError("at least one requested presentation context is required")
        copies = [copy(context) for context in contexts]
        for index, context in enumerate(copies):
            context._transfer_syntax = list(context._transfer_syntax)
            context.context_id = 2 * index + 1
        return copies


class OwnedRequestHandler(RequestHandler):
    """The association server's request handler, creating :class:`OwnedAssociation` s.

    :meth:`OwnedAE.make_server` (used by ``start_server``) passes it to the server.
    """

    def _create_association(self) -> OwnedAssociation:
        """As pynetdicom's, with our association and socket classes."""
        ae, server = self.ae, self.server
        assoc = OwnedAssociation(ae, MODE_ACCEPTOR)
        assoc._server = server
        assoc.name = f"AcceptorThread@{datetime.now():%Y%m%d%H%M%S}"
        limit = ae.maximum_pdu_size or DEFAULT_READ_LIMIT
        assoc.set_socket(OwnedSocket(assoc, client_socket=self.request, read_limit=limit))
        acceptor = assoc.acceptor
        acceptor.maximum_length = ae.maximum_pdu_size
        acceptor.ae_title = server.ae_title
        acceptor.address_info = self.local
        acceptor.implementation_class_uid = ae.implementation_class_uid
        acceptor.implementation_version_name = ae.implementation_version_name
        acceptor.supported_contexts = deepcopy(server.contexts)
        assoc.requestor.address_info = self.remote
        registered: dict[Any, Any] = server._handlers
        for event, handlers in registered.items():
            if event.is_intervention and handlers:
                assoc.bind(event, *handlers)
            elif not event.is_intervention:
                for handler in handlers:
                    assoc.bind(event, handler[0], handler[1])
        return assoc
