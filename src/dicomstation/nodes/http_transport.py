"""The httpx client's transport for a DICOMweb server: fast body reads on our own connections only.

A WADO-RS series download spends much of its CPU per received byte in the HTTP
stack, not in the network: httpcore reads 64 KiB per ``recv`` and h11's
``ReceiveBuffer`` copies every read into a bytearray, slices it twice and
httpcore copies the slice into ``bytes`` again (four copies of each body byte).
Neither library has a public setting for this (see docs/upstream/h11.md,
httpcore.md, httpx.md), so the transport built here uses its *own* subclasses,
on its own connection pool only:

* :class:`_Pool` (an ``httpcore.ConnectionPool``) makes :class:`_Connection`
  objects (``httpcore.HTTPConnection``), which speak HTTP/1.1 through
  :class:`_HTTP11Connection`: 1 MiB per socket read (:data:`READ_BYTES`, a class
  attribute of our subclass, not httpcore's) and an :class:`AdoptingReceiveBuffer`
  in *that connection's* ``h11.Connection``;
* :class:`AdoptingReceiveBuffer` (a subclass of h11's buffer) keeps a received
  ``bytes`` object as it is while the buffer is empty and hands it to the body
  reader whole, so a body byte is copied once (by the kernel into ``bytes``).

h11's and httpcore's classes, and every other client in the process (uvicorn's
server included), are left exactly as they are. The subclasses rely on private
names (``HTTPConnection._connect``, ``h11.Connection._receive_buffer``, the
``ReceiveBuffer`` fields), so they are used only on the exact minor versions they
were checked against (:data:`CHECKED_VERSIONS`, pinned in pyproject.toml) and only
when h11's buffer has exactly the methods this was written for; on any other
version, or through a proxy, the plain httpx transport is used unchanged.
"""

from __future__ import annotations

import ssl
import threading
import typing

import h11
import httpcore
import httpx
from h11._receivebuffer import ReceiveBuffer

__all__ = [
    "CHECKED_VERSIONS",
    "READ_BYTES",
    "AdoptingReceiveBuffer",
    "LargeReadTransport",
    "large_reads_supported",
]

#: Bytes asked of the socket per read on our connections (httpcore's default: 64 KiB).
READ_BYTES = 1 << 20
#: (httpx, httpcore, h11) version prefixes the subclasses were checked on (pinned in pyproject).
CHECKED_VERSIONS = ("0.28.", "1.0.", "0.16.")
#: the methods of h11 0.16's ReceiveBuffer, which AdoptingReceiveBuffer wraps one by one
_H11_BUFFER_METHODS = frozenset(
    {
        "__init__",
        "__iadd__",
        "__bool__",
        "__len__",
        "__bytes__",
        "_extract",
        "maybe_extract_at_most",
        "maybe_extract_next_line",
        "maybe_extract_lines",
        "is_next_line_obviously_invalid_request_line",
    }
)


def _h11_buffer_known() -> bool:
    methods = {name for name, value in vars(ReceiveBuffer).items() if callable(value)}
    probe = ReceiveBuffer()
    return (
        methods == _H11_BUFFER_METHODS
        and isinstance(getattr(probe, "_data", None), bytearray)
        and hasattr(probe, "_next_line_search")
        and hasattr(probe, "_multiple_lines_search")
    )


def large_reads_supported() -> bool:
    """True on the httpx, httpcore and h11 minor versions our connection classes were checked on."""
    versions = (httpx.__version__, httpcore.__version__, getattr(h11, "__version__", ""))
    return all(v.startswith(p) for v, p in zip(versions, CHECKED_VERSIONS, strict=True)) and (
        _h11_buffer_known()
    )


class AdoptingReceiveBuffer(ReceiveBuffer):
    """h11's receive buffer that passes whole received ``bytes`` objects through uncopied.

    ``+=`` of a ``bytes`` object while the buffer is empty keeps the object aside
    (``_pending``); :meth:`maybe_extract_at_most` (every body reader) returns it as
    it is when asked for at least its length, and a whole bytearray is handed over
    rather than sliced. Every method that parses the buffer (status line, headers,
    chunk sizes) first appends the kept object as h11 would have at once, so h11
    sees the same bytes in the same order. Used only in the ``h11.Connection`` of
    our own :class:`_HTTP11Connection` objects.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pending: bytes | None = None

    def _materialize(self) -> None:
        if self._pending is not None:
            self._data += self._pending
            self._pending = None

    def __iadd__(self, byteslike: bytes | bytearray) -> AdoptingReceiveBuffer:
        if type(byteslike) is bytes and self._pending is None and not self._data:
            self._pending = byteslike  # immutable: kept as is, no copy
        else:
            self._materialize()
            self._data += byteslike
        return self

    def __len__(self) -> int:
        return len(self._data) + (len(self._pending) if self._pending is not None else 0)

    def __bytes__(self) -> bytes:
        self._materialize()
        return super().__bytes__()

    def _extract(self, count: int) -> bytearray:
        self._materialize()
        return super()._extract(count)

    def maybe_extract_at_most(self, count: int) -> bytes | bytearray | None:  # type: ignore[override]
        """Up to ``count`` bytes: a kept ``bytes`` read or the whole bytearray without a copy."""
        pending = self._pending
        if pending is not None and count >= len(pending):  # _data is empty meanwhile
            self._pending = None
            self._next_line_search = self._multiple_lines_search = 0
            return pending
        self._materialize()
        data = self._data
        if not data:
            return None
        if count < len(data):
            return super()._extract(count)
        self._data = bytearray()
        self._next_line_search = self._multiple_lines_search = 0
        return data

    def maybe_extract_next_line(self) -> bytearray | None:
        self._materialize()
        return super().maybe_extract_next_line()

    def maybe_extract_lines(self) -> list[bytearray] | None:
        self._materialize()
        return super().maybe_extract_lines()

    def is_next_line_obviously_invalid_request_line(self) -> bool:
        self._materialize()
        return super().is_next_line_obviously_invalid_request_line()


class _HTTP11Connection(httpcore.HTTP11Connection):
    """httpcore's HTTP/1.1 connection with 1 MiB reads and an :class:`AdoptingReceiveBuffer`."""

    READ_NUM_BYTES = READ_BYTES  # this subclass only; httpcore's class keeps 64 KiB

    def __init__(
        self, origin: httpcore.Origin, stream: httpcore.NetworkStream, **kwargs: typing.Any
    ) -> None:
        super().__init__(origin, stream, **kwargs)
        # h11 keeps one buffer per connection for its whole life (keep-alive included)
        self._h11_state._receive_buffer = AdoptingReceiveBuffer()


class _Connection(httpcore.HTTPConnection):
    """An ``httpcore.HTTPConnection`` that speaks HTTP/1.1 through :class:`_HTTP11Connection`.

    httpcore builds its ``HTTP11Connection`` inside ``handle_request``; here the
    connection is opened first (httpcore's own ``_connect``: retries, TLS, timeouts)
    and our subclass put in place, then httpcore's ``handle_request`` runs as usual
    and finds it. Only for pools without HTTP/2 (ours), where httpcore would make
    the same HTTP/1.1 connection.
    """

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        if (
            self._connection is None
            and not self._http2
            and self.can_handle_request(request.url.origin)
        ):
            with self._request_lock:
                if self._connection is None:
                    try:
                        stream = self._connect(request)
                    except BaseException:
                        self._connect_failed = True
                        raise
                    self._connection = _HTTP11Connection(
                        origin=self._origin, stream=stream, keepalive_expiry=self._keepalive_expiry
                    )
        return super().handle_request(request)


class _LazyTLS:
    """One transport's TLS context, built on its first https connection (thread-safe).

    Building a verifying context loads the CA store (~35-100 ms of CPU); a node of an
    ``http://`` server (and every pipeline task that opens one) never needs it.
    """

    def __init__(self, verify: ssl.SSLContext | bool, trust_env: bool) -> None:
        self._verify = verify
        self._trust_env = trust_env
        self._context: ssl.SSLContext | None = None
        self._lock = threading.Lock()

    def context(self) -> ssl.SSLContext:
        """The context httpx would have built for ``verify`` and ``trust_env``."""
        with self._lock:
            if self._context is None:
                self._context = httpx.create_ssl_context(
                    verify=self._verify, trust_env=self._trust_env
                )
            return self._context


class _Pool(httpcore.ConnectionPool):
    """A connection pool (no proxy) whose connections are :class:`_Connection` objects.

    TLS connections get ``tls``'s context, made when the first one is opened.
    """

    def __init__(self, tls: _LazyTLS, **kwargs: typing.Any) -> None:
        super().__init__(**kwargs)
        self._tls = tls

    def create_connection(self, origin: httpcore.Origin) -> httpcore.ConnectionInterface:
        if self._proxy is not None or self._http2:  # pragma: no cover - not built that way
            return super().create_connection(origin)
        secure = origin.scheme in (b"https", b"wss")
        return _Connection(
            origin=origin,
            ssl_context=self._tls.context() if secure else None,
            keepalive_expiry=self._keepalive_expiry,
            http1=self._http1,
            http2=self._http2,
            retries=self._retries,
            local_address=self._local_address,
            uds=self._uds,
            network_backend=self._network_backend,
            socket_options=self._socket_options,
        )


class LargeReadTransport(httpx.HTTPTransport):
    """An ``httpx.HTTPTransport`` (no proxy) whose connections read fast (see the module).

    httpx builds its pool in ``__init__`` with no way to choose its class, so on the
    checked versions (``large_reads`` says which) this instance builds a :class:`_Pool`
    instead, with the same limits and the TLS context httpx would build, made when
    the first https connection is opened (none for an ``http://`` server).

    Parameters
    ----------
    verify : ssl.SSLContext or bool
        TLS verification, as for httpx.
    limits : httpx.Limits, optional
        Connection pool bounds (httpx's defaults when not given).
    trust_env : bool
        Whether SSL_CERT_FILE / SSL_CERT_DIR are honoured, as for httpx.
    """

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
        trust_env: bool = True,
    ) -> None:
        limits = limits or httpx.Limits()
        self.large_reads = large_reads_supported()
        if not self.large_reads:  # pragma: no cover - another httpx/httpcore/h11: plain transport
            super().__init__(verify=verify, limits=limits, trust_env=trust_env)
            return
        # httpx 0.28's HTTPTransport.__init__ only builds its pool (and the TLS context for
        # it, loading the CA store: ~35-100 ms even for http://); ours replaces it, with
        # the same context made on the first https connection (large_reads: checked versions)
        self._pool = _Pool(
            _LazyTLS(verify, trust_env),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
        )
