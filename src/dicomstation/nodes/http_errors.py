"""The ONE place where httpx errors and HTTP error statuses become dicomstation errors.

Every DICOMweb call goes through :func:`translate` (for exceptions) and
:func:`check_status` (for responses), so callers only catch the
:class:`~dicomstation.errors.NodeError` family. ``tests/dicomweb/test_http_errors.py``
checks that every httpx exception class has an explicit entry in :data:`MAPPING`.
Messages never include request headers (which may carry credentials) and strip
user-info from URLs.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import re

import httpx

from dicomstation.errors import (
    AuthenticationError,
    ConnectionFailedError,
    NodeError,
    ProtocolError,
    RemoteStatusError,
)

__all__ = [
    "MAPPING",
    "RETRY_STATUSES",
    "check_status",
    "is_retryable",
    "redact",
    "retry_after_seconds",
    "translate",
]

#: httpx exception class -> (our error class, a plain-words description)
MAPPING: dict[type[Exception], tuple[type[NodeError], str]] = {
    httpx.HTTPError: (NodeError, "HTTP error"),
    httpx.RequestError: (NodeError, "request failed"),
    httpx.TransportError: (ConnectionFailedError, "transport error"),
    httpx.TimeoutException: (ConnectionFailedError, "timed out"),
    httpx.ConnectTimeout: (ConnectionFailedError, "timed out connecting"),
    httpx.ReadTimeout: (ConnectionFailedError, "timed out waiting for data"),
    httpx.WriteTimeout: (ConnectionFailedError, "timed out sending data"),
    httpx.PoolTimeout: (ConnectionFailedError, "timed out waiting for a free connection"),
    httpx.NetworkError: (ConnectionFailedError, "network error"),
    httpx.ConnectError: (ConnectionFailedError, "cannot connect"),
    httpx.ReadError: (ConnectionFailedError, "connection dropped while reading"),
    httpx.WriteError: (ConnectionFailedError, "connection dropped while sending"),
    httpx.CloseError: (ConnectionFailedError, "error closing the connection"),
    httpx.ProxyError: (ConnectionFailedError, "proxy error"),
    httpx.ProtocolError: (ConnectionFailedError, "HTTP protocol error"),
    httpx.RemoteProtocolError: (
        ConnectionFailedError,
        "server broke the HTTP protocol (connection closed mid-response?)",
    ),
    httpx.LocalProtocolError: (ProtocolError, "invalid HTTP request"),
    httpx.UnsupportedProtocol: (NodeError, "unsupported URL scheme (use http or https)"),
    httpx.DecodingError: (ProtocolError, "cannot decode the response body"),
    httpx.TooManyRedirects: (ProtocolError, "too many redirects"),
    httpx.HTTPStatusError: (RemoteStatusError, "error status"),
    httpx.InvalidURL: (NodeError, "invalid URL"),
    httpx.CookieConflict: (NodeError, "cookie conflict"),
    httpx.StreamError: (ProtocolError, "stream error"),
    httpx.StreamConsumed: (ProtocolError, "request body already consumed (cannot resend)"),
    httpx.StreamClosed: (ProtocolError, "response stream closed"),
    httpx.ResponseNotRead: (ProtocolError, "response not read"),
    httpx.RequestNotRead: (ProtocolError, "request not read"),
}

#: statuses worth retrying (rate limiting, server overload, gateway trouble)
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def redact(text: str) -> str:
    """Remove ``user:password@`` from any URL in ``text``."""
    return _USERINFO.sub("***@", text)


def _lookup(exc: BaseException) -> tuple[type[NodeError], str]:
    for cls in type(exc).__mro__:
        if cls in MAPPING:
            return MAPPING[cls]
    return NodeError, "unexpected error"


def translate(exc: Exception, *, server: str, operation: str, uid: str | None = None) -> NodeError:
    """Return the dicomstation error for an httpx exception (to be raised ``from`` it).

    A :class:`httpx.HTTPStatusError` is translated like :func:`check_status` would.
    The httpx message is kept only for exceptions that cannot carry headers.
    """
    if isinstance(exc, NodeError):
        return exc
    if isinstance(exc, httpx.HTTPStatusError):
        return _status_error(exc.response, server=server, operation=operation, uid=uid)
    cls, words = _lookup(exc)
    detail = redact(str(exc).strip())[:300]
    message = f"{words} ({type(exc).__name__}: {detail})" if detail else words
    return cls(message, server=server, operation=operation, uid=uid)


_EXCERPT = 2000


def _excerpt_bytes(response: httpx.Response) -> bytes:
    """The first bytes of the body; a streamed body is read no further than that."""
    try:
        return response.content[:_EXCERPT]
    except httpx.ResponseNotRead:
        pass
    data = bytearray()
    for chunk in response.iter_bytes():  # the caller closes the response
        data += chunk
        if len(data) >= _EXCERPT:
            break
    return bytes(data[:_EXCERPT])


def _body_excerpt(response: httpx.Response) -> str:
    try:
        text = _excerpt_bytes(response).decode("utf-8", "replace")
    except (httpx.HTTPError, RuntimeError):
        return ""
    try:
        data = json.loads(text)
    except ValueError:
        return redact(" ".join(text.split()))[:200]
    if isinstance(data, dict):
        parts = [str(data[k]) for k in ("Message", "Details", "message", "error") if k in data]
        return redact("; ".join(parts))[:200]
    return ""


def _status_error(
    response: httpx.Response, *, server: str, operation: str, uid: str | None
) -> NodeError:
    status = response.status_code
    reason = response.reason_phrase or "error"
    excerpt = _body_excerpt(response)
    message = f"HTTP {status} {reason}" + (f": {excerpt}" if excerpt else "")
    if status in (401, 403):
        hint = " (check the server's credentials in the settings)"
        return AuthenticationError(
            message + hint, server=server, operation=operation, uid=uid, status=status
        )
    if status == 404:
        message = f"not found on the server (HTTP 404{': ' + excerpt if excerpt else ''})"
    error = RemoteStatusError(message, server=server, operation=operation, uid=uid, status=status)
    seconds = retry_after_seconds(response.headers.get("retry-after", ""))
    if seconds is not None:  # read by transfer.with_retries, which caps it (max_retry_after)
        error.retry_after = seconds  # type: ignore[attr-defined]
    return error


def retry_after_seconds(value: str) -> float | None:
    """Seconds asked by a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent.

    Not capped here: :func:`dicomstation.transfer.with_retries` refuses to wait
    longer than its policy's ``max_retry_after``.
    """
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(min(int(value[:12]), 10**9))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


def check_status(
    response: httpx.Response, *, server: str, operation: str, uid: str | None = None
) -> None:
    """Raise the matching :class:`NodeError` when ``response`` has a 4xx/5xx status."""
    if response.status_code >= 400:
        raise _status_error(response, server=server, operation=operation, uid=uid)


def is_retryable(exc: BaseException) -> bool:
    """True for errors worth retrying: dropped connections, timeouts, 408/429/5xx."""
    if isinstance(exc, ConnectionFailedError):
        return True
    return isinstance(exc, RemoteStatusError) and exc.status in RETRY_STATUSES
