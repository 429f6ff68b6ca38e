"""A storage SCP that receives C-STORE into the local database (like Slicer's DICOM listener).

Used by ``dicomstation listen`` and, for the length of one retrieve, by C-MOVE.
It accepts every storage SOP class in every common transfer syntax (datasets are
stored exactly as sent) and C-ECHO; each association runs in its own thread and
all of them share one thread-safe :class:`~dicomstation.nodes.dimse_receive.Receiver`.

Example
-------
>>> with StorageListener(db, ae_title="DICOMSTATION", port=11112) as listener:
...     ...  # peers send to DICOMSTATION@127.0.0.1:11112
>>> listener.report.succeeded
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pynetdicom import AE, evt
from pynetdicom.presentation import AllStoragePresentationContexts

from dicomstation.config import LocalNodeConfig
from dicomstation.errors import ConfigError
from dicomstation.models import ProgressEvent, TransferReport
from dicomstation.nodes.dimse_assoc import ACCEPT_TRANSFER_SYNTAXES, MAX_PDU, no_delay
from dicomstation.nodes.dimse_fastscp import FastStorageSCP
from dicomstation.nodes.dimse_query import VERIFICATION
from dicomstation.nodes.dimse_receive import Receiver

if TYPE_CHECKING:
    from dicomstation.database import Database

__all__ = ["StorageListener"]


def _storage_ae(ae_title: str, timeout: float) -> AE:
    ae = AE(ae_title=ae_title)
    ae.maximum_pdu_size = MAX_PDU
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    ae.maximum_associations = 32
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(str(context.abstract_syntax), list(ACCEPT_TRANSFER_SYNTAXES))
    ae.add_supported_context(VERIFICATION)
    return ae


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
        ACSE/DIMSE/network timeout for peers, in seconds.
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
        timeout: float = 60.0,
        operation: str = "C-STORE",
        receiver: Receiver | None = None,
        fast: bool = True,
    ) -> None:
        self.db = db
        self.ae_title = ae_title
        self.host = host
        self._port = port
        self._progress = progress
        self._timeout = timeout
        self._operation = operation
        self._server: Any = None
        self._ae: AE | None = None
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
            self.db, operation=self._operation, progress=self._progress
        )
        self._ae = _storage_ae(self.ae_title, self._timeout)
        handlers: list[Any] = [
            (evt.EVT_C_STORE, self.receiver.handle),
            (evt.EVT_CONN_OPEN, no_delay),
        ]
        if self.fast:
            handlers += FastStorageSCP(self.receiver, self._timeout).handlers()
        try:
            self._server = self._ae.start_server(
                (self.host, self._port), block=False, evt_handlers=handlers
            )
        except OSError as exc:
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

    def wait_indexed(self) -> None:
        """Block until every instance received so far is in the database."""
        if self.receiver is not None:
            self.receiver.wait()

    def stop(self) -> TransferReport:
        """Stop accepting, let running associations end, index everything; return the report."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._ae is not None:
            self._ae.shutdown()
            self._ae = None
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
