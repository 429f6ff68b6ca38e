"""A storage SCP that receives C-STORE into the local database (like Slicer's DICOM listener).

Used by ``dicomstation listen`` and, for the length of one retrieve, by C-MOVE.
It accepts every storage SOP class in every common transfer syntax (datasets are
stored exactly as sent) and C-ECHO; each association runs in its own thread and
all of them share one thread-safe :class:`~dicomstation.nodes.dimse_receive.Receiver`:
a C-STORE is answered Success only once its instance is indexed.

Limits against peers that misbehave: at most ``max_associations`` associations
(connections beyond twice that are closed at once), a connection that sends no
association request within ``acse_timeout`` seconds is closed, an association idle
for ``timeout`` seconds is aborted, PDUs are held to the length we announce, and an
optional ``allow_ae`` list rejects other calling AE titles. Every refusal is logged.

Example
-------
>>> with StorageListener(db, ae_title="DICOMSTATION", port=11112) as listener:
...     ...  # peers send to DICOMSTATION@127.0.0.1:11112
>>> listener.report.succeeded
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pynetdicom import AE, evt
from pynetdicom.presentation import AllStoragePresentationContexts

from dicomstation.config import LocalNodeConfig
from dicomstation.errors import ConfigError
from dicomstation.models import ProgressEvent, TransferReport
from dicomstation.nodes.dimse_assoc import (
    ACCEPT_TRANSFER_SYNTAXES,
    MAX_PDU,
    connection_opened,
    new_ae,
)
from dicomstation.nodes.dimse_fastscp import FastStorageSCP, describe_peer
from dicomstation.nodes.dimse_owned import OwnedAssociation
from dicomstation.nodes.dimse_query import VERIFICATION
from dicomstation.nodes.dimse_receive import MAX_INSTANCE_BYTES, Receiver

if TYPE_CHECKING:
    from dicomstation.database import Database

__all__ = ["StorageListener"]


_LOG = logging.getLogger(__name__)


def _storage_ae(ae_title: str, limits: _Limits) -> AE:
    ae = new_ae(ae_title)
    ae.maximum_pdu_size = MAX_PDU
    ae.acse_timeout = limits.acse_timeout
    ae.dimse_timeout = limits.timeout
    ae.network_timeout = limits.timeout
    ae.maximum_associations = limits.max_associations
    if limits.allow_ae:
        ae.require_calling_aet = list(limits.allow_ae)
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(str(context.abstract_syntax), list(ACCEPT_TRANSFER_SYNTAXES))
    ae.add_supported_context(VERIFICATION)
    return ae


def _cut_connection(assoc: Any) -> None:
    """End ``assoc``'s TCP connection so that its reader wakes up at once."""
    if isinstance(assoc, OwnedAssociation):
        assoc.shutdown_socket()


class _Watchdog:
    """Closes connections whose association request is not complete in time.

    pynetdicom's ACSE timeout ends a connection that sends nothing, but not one that
    trickles its A-ASSOCIATE-RQ (its reader blocks inside the PDU): such a connection
    would hold an association slot for as long as the peer likes.
    """

    def __init__(self, limit: float) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._waiting: list[tuple[float, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="dicomstation-acse-watchdog", daemon=True
        )
        self._thread.start()

    def watch(self, assoc: Any) -> None:
        """Close ``assoc``'s connection unless its request is read within the limit."""
        with self._lock:
            self._waiting.append((time.monotonic() + self._limit, assoc))

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            now = time.monotonic()
            with self._lock:
                due = [assoc for when, assoc in self._waiting if when <= now]
                self._waiting = [(w, a) for w, a in self._waiting if w > now]
            for assoc in due:
                if getattr(assoc, "dicomstation_requested", False) or not assoc.is_alive():
                    continue
                where = f"{assoc.requestor.address}:{assoc.requestor.port}"
                _LOG.warning(
                    "connection from %s closed: no complete association request within %gs",
                    where,
                    self._limit,
                )
                _cut_connection(assoc)

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        self._thread.join()


def _requested(event: Any) -> None:
    """``EVT_REQUESTED``: the association request has been read whole."""
    event.assoc.dicomstation_requested = True


@dataclass(frozen=True)
class _Limits:
    """The listener's limits (see :class:`StorageListener`)."""

    timeout: float
    acse_timeout: float
    max_associations: int
    allow_ae: tuple[str, ...]

    @classmethod
    def checked(
        cls,
        timeout: float,
        acse_timeout: float,
        max_associations: int,
        allow_ae: Sequence[str] | None,
    ) -> _Limits:
        if not timeout > 0 or not acse_timeout > 0:
            raise ConfigError("listener timeouts must be positive numbers of seconds")
        if max_associations < 1:
            raise ConfigError("the listener needs max_associations >= 1")
        titles = tuple(str(t).strip() for t in allow_ae or ())
        for title in titles:
            printable = title.isascii() and title.isprintable()
            if not 0 < len(title) <= 16 or "\\" in title or not printable:
                raise ConfigError(f"invalid AE title in the allow list: {title!r}")
        return cls(timeout, acse_timeout, max_associations, titles)


class StorageListener:
    """Receive C-STORE requests into ``db`` on ``host:port`` as ``ae_title``.

    Parameters
    ----------
    db : Database
        Where received instances are indexed (already present ones are skipped).
    ae_title : str
        Our AE title; associations calling another title are still accepted
        (peers differ on what they call us), like most PACS listeners.
    port : int
        TCP port; 0 picks a free one (see :attr:`port` after :meth:`start`).
    host : str
        Address to bind; 127.0.0.1 unless you mean to be reachable from elsewhere.
    progress : callable, optional
        Receives a :class:`ProgressEvent` for every received instance.
    timeout : float
        Idle (network/DIMSE) timeout, in seconds: an association that sends nothing
        for this long is aborted.
    acse_timeout : float
        Seconds a new connection has to send its association request (and other
        ACSE waits): idle TCP connections cannot hold association slots for longer.
    max_associations : int
        Concurrent associations accepted; more are rejected, and connections beyond
        twice this number are closed at once.
    allow_ae : sequence of str, optional
        Calling AE titles allowed to associate; others are rejected (logged). None
        or empty: any calling AE.
    max_instance_bytes : int
        Larger received instances are refused (0xA700), their bytes not kept.
    operation : str
        Name used in progress events and the report.
    receiver : Receiver, optional
        Use this receiver (owned by the caller) instead of a new one.
    fast : bool
        Read storage associations with :mod:`dimse_fastscp` (default) rather than
        through pynetdicom's slower receive path.
    """

    def __init__(
        self,
        db: Database,
        *,
        ae_title: str = "DICOMSTATION",
        port: int = 11112,
        host: str = "127.0.0.1",
        progress: Callable[[ProgressEvent], None] | None = None,
        timeout: float = 30.0,
        operation: str = "C-STORE",
        receiver: Receiver | None = None,
        fast: bool = True,
        acse_timeout: float = 10.0,
        max_associations: int = 16,
        allow_ae: Sequence[str] | None = None,
        max_instance_bytes: int = MAX_INSTANCE_BYTES,
    ) -> None:
        self.db = db
        self.ae_title = ae_title
        self.host = host
        self._port = port
        self._progress = progress
        self._limits = _Limits.checked(timeout, acse_timeout, max_associations, allow_ae)
        self._max_instance = max_instance_bytes
        self._operation = operation
        self._server: Any = None
        self._ae: AE | None = None
        self._watchdog: _Watchdog | None = None
        self._cut: weakref.WeakSet[Any] = weakref.WeakSet()
        self._given = receiver
        self.fast = fast
        self.receiver: Receiver | None = None
        self._report: TransferReport | None = None

    @classmethod
    def from_config(cls, db: Database, local: LocalNodeConfig, **kwargs: Any) -> StorageListener:
        """A listener with our configured AE title, host and port."""
        return cls(db, ae_title=local.ae_title, port=local.port, host=local.host, **kwargs)

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with ``port=0``)."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return self._port

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server is not None

    def start(self) -> StorageListener:
        """Bind and start serving in background threads.

        Raises
        ------
        ConfigError
            If the address cannot be bound (port in use, not permitted...).
        """
        if self._server is not None:
            return self
        self.receiver = self._given or Receiver(
            self.db,
            operation=self._operation,
            progress=self._progress,
            max_instance_bytes=self._max_instance,
        )
        self._ae = _storage_ae(self.ae_title, self._limits)
        handlers: list[Any] = [
            (evt.EVT_C_STORE, self.receiver.handle),
            (evt.EVT_CONN_OPEN, self._on_connection),
            (evt.EVT_REQUESTED, _requested),
            (evt.EVT_REJECTED, self._on_rejected),
        ]
        self._watchdog = _Watchdog(self._limits.acse_timeout + 0.5)
        if self.fast:
            handlers += FastStorageSCP(self.receiver, self._limits.timeout).handlers()
        try:
            self._server = self._ae.start_server(
                (self.host, self._port), block=False, evt_handlers=handlers
            )
        except OSError as exc:
            self._watchdog.stop()
            self._watchdog = None
            if self._given is None:
                self.receiver.finish()
            self.receiver = None
            self._ae.shutdown()
            self._ae = None
            raise ConfigError(
                f"cannot listen on {self.host}:{self._port} as "
                f"{self.ae_title}: {exc.strerror or exc}"
            ) from None
        return self

    @property
    def allow_ae(self) -> tuple[str, ...]:
        """Calling AE titles allowed (empty: any)."""
        return self._limits.allow_ae

    def _on_connection(self, event: Any) -> None:
        """Nagle off, PDU reads bounded; close a connection beyond the connection cap."""
        connection_opened(event)
        ae = self._ae
        # Connections we already cut stay in pynetdicom's list until their thread ends:
        # counting them would let refused attempts keep every newcomer out.
        live = [a for a in ae.active_associations if a not in self._cut] if ae else []
        open_now = len(live)
        cap = 2 * self._limits.max_associations
        if open_now >= cap:
            address = event.address if hasattr(event, "address") else "?"
            _LOG.warning(
                "%s listener: connection from %s closed: %d connections already open",
                self._operation,
                address,
                open_now,
            )
            self._cut.add(event.assoc)
            _cut_connection(event.assoc)
        elif self._watchdog is not None:
            self._watchdog.watch(event.assoc)

    def _on_rejected(self, event: Any) -> None:
        """Log an association we rejected (calling AE not allowed, too many associations)."""
        calling, peer = describe_peer(event.assoc.requestor, self._operation)
        allowed = self._limits.allow_ae
        if allowed and calling not in allowed:
            why = "calling AE title not in the allow list"
        else:
            why = f"more than {self._limits.max_associations} associations, or refused"
        _LOG.warning("%s: association rejected: %s", peer, why)

    def wait_indexed(self) -> None:
        """Block until every instance received so far is in the database."""
        if self.receiver is not None:
            self.receiver.wait()

    def stop(self) -> TransferReport:
        """Stop accepting, let running associations end, index everything; return the report."""
        if self._server is not None:
            _wake(self._server)
            self._server.shutdown()
            self._server = None
        if self._ae is not None:
            self._ae.shutdown()
            self._ae = None
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None
        if self.receiver is not None:
            if self._given is None:
                self._report = self.receiver.finish()
            else:  # the caller owns the receiver and finishes it
                self.receiver.wait()
                self._report = self.receiver.report()
            self.receiver = None
        return self.report

    @property
    def report(self) -> TransferReport:
        """What has been received (complete after :meth:`stop`)."""
        if self.receiver is not None:
            return self.receiver.report()
        return self._report or TransferReport(self._operation)

    def __enter__(self) -> StorageListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"StorageListener({self.ae_title}@{self.host}:{self.port}, {state})"


def _wake(server: Any) -> None:
    """Make the server's accept loop see its shutdown now.

    ``serve_forever`` checks for a shutdown between waits of 0.5 s (pynetdicom starts
    it with socketserver's default poll interval), so every stop of a listener took
    0-0.5 s, paid by each C-MOVE. Shutting the listening socket down makes that wait
    return at once (Linux); where it does not, the stop takes the poll's time as before.
    """
    with contextlib.suppress(OSError):
        server.socket.shutdown(socket.SHUT_RDWR)
