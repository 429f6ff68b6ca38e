"""Inflating compressed DICOMweb answers in bounded pieces, on our own transport only.

httpx decodes ``Content-Encoding: gzip`` / ``deflate`` itself, one network read at a
time and each read whole (httpx 0.28 ``GZipDecoder.decode`` calls ``decompress``
without a ``max_length``). Deflate inflates up to ~1,000-fold and our connections
read up to 1 MiB at once (:mod:`http_transport`), so one read of a hostile answer
could take about a GiB before any size limit of ours (:mod:`http_limits`) saw its
first byte. httpx has no public setting to bound its decoders (proposal in
docs/upstream/httpx.md), so :class:`BoundedDecodingTransport` wraps the client's
transport: an answer whose encodings are all gzip/deflate is inflated here in pieces
of at most :data:`PIECE_BYTES` (``zlib``'s ``max_length``), and handed to httpx
without its ``Content-Encoding`` and ``Content-Length`` (so httpx does not decode it
again); any other answer passes through untouched. The client asks only for what
this decodes (``Accept-Encoding: gzip, deflate``, httpx's own default without brotli
or zstandard installed).

A transport may also cap an answer's whole (inflated) body (``max_body``), for
clients whose answers are small JSON read whole by another library (the OpenID
Connect provider's, read by Authlib): a longer answer is
:class:`AnswerTooLargeError` once the cap is passed, whatever its encoding. A
request may set its own cap (the :data:`MAX_BODY` request extension: a token
request, a worklist query), and an error answer (status >= 400, read whole by
httpx in an auth flow's retry, or for its text) is capped at
:data:`ERROR_BODY_BYTES`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator

import httpx

__all__ = [
    "ACCEPT_ENCODING",
    "ERROR_BODY_BYTES",
    "MAX_BODY",
    "PIECE_BYTES",
    "AnswerTooLargeError",
    "BoundedDecodingTransport",
]

#: at most this many inflated bytes per piece handed to httpx
PIECE_BYTES = 1 << 20
#: what our clients ask for: exactly what this module inflates
ACCEPT_ENCODING = "gzip, deflate"
#: the request extension naming a cap (bytes) on that request's answer
MAX_BODY = "dicomstation.max_body"
#: an error answer longer than this is refused (only its first bytes are ever shown)
ERROR_BODY_BYTES = 1 << 20


def _gzip_wbits(_first: bytes) -> int:
    return zlib.MAX_WBITS | 16


def _deflate_wbits(first: bytes) -> int:
    """zlib-wrapped deflate (RFC 9110) if ``first`` starts with a zlib header, else raw."""
    if len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0:
        return zlib.MAX_WBITS
    return -zlib.MAX_WBITS


#: each encoding this inflates -> its zlib window bits, from the first bytes
_ENCODINGS: dict[str, Callable[[bytes], int]] = {
    "gzip": _gzip_wbits,
    "x-gzip": _gzip_wbits,
    "deflate": _deflate_wbits,
}


def _inflate(chunks: Iterable[bytes], wbits: Callable[[bytes], int]) -> Iterator[bytes]:
    """The inflated ``chunks``, in pieces of at most :data:`PIECE_BYTES`.

    As httpx does, bytes after the end of the compressed data are ignored.
    """
    inflater = None
    for chunk in chunks:
        if not chunk:
            continue
        if inflater is None:
            inflater = zlib.decompressobj(wbits(chunk))
        data = chunk
        while not inflater.eof:
            try:
                piece = inflater.decompress(data, PIECE_BYTES)
            except zlib.error as exc:
                raise httpx.DecodingError(f"cannot inflate the answer ({exc})") from None
            if piece:
                yield piece
            data = inflater.unconsumed_tail
            if not data and len(piece) < PIECE_BYTES:
                break  # this chunk taken, nothing held back: the next chunk
    if inflater is not None and not inflater.eof:
        raise httpx.DecodingError("the compressed answer ends before its end marker")


class AnswerTooLargeError(httpx.DecodingError):
    """An answer longer than its transport's ``max_body`` (inflated bytes)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is longer than {limit} bytes")
        self.limit = limit


class _Capped(httpx.SyncByteStream):
    """``stream``, refused once more than ``limit`` bytes came through."""

    def __init__(self, stream: httpx.SyncByteStream, limit: int) -> None:
        self._stream = stream
        self._limit = limit

    def __iter__(self) -> Iterator[bytes]:
        seen = 0
        for chunk in self._stream:
            seen += len(chunk)
            if seen > self._limit:
                raise AnswerTooLargeError(self._limit)
            yield chunk

    def close(self) -> None:
        self._stream.close()


class _Inflated(httpx.SyncByteStream):
    def __init__(self, stream: httpx.SyncByteStream, encodings: list[str]) -> None:
        self._stream = stream
        self._encodings = encodings

    def __iter__(self) -> Iterator[bytes]:
        pieces: Iterable[bytes] = self._stream
        for name in reversed(self._encodings):  # the last applied is undone first
            pieces = _inflate(pieces, _ENCODINGS[name])
        yield from pieces

    def close(self) -> None:
        self._stream.close()


class BoundedDecodingTransport(httpx.BaseTransport):
    """An httpx transport around ``inner`` that inflates gzip/deflate answers in bounded pieces.

    Parameters
    ----------
    inner : httpx.BaseTransport
        The transport that talks to the server (closed with this one).
    max_body : int, optional
        Refuse answers longer than this many (inflated) bytes: reading one raises
        :class:`AnswerTooLargeError` once the cap is passed.
    """

    def __init__(self, inner: httpx.BaseTransport, max_body: int | None = None) -> None:
        self.inner = inner
        self.max_body = max_body

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """The inner transport's answer, inflated here if it is gzip/deflate-encoded."""
        response = self.inner.handle_request(request)
        value = response.headers.get("content-encoding", "")
        encodings = [e.strip().lower() for e in value.split(",") if e.strip()]
        encodings = [e for e in encodings if e != "identity"]
        ours = bool(encodings) and all(e in _ENCODINGS for e in encodings)
        limit = self._limit(request, response.status_code)
        if not ours and limit is None:
            return response  # not compressed, or not by us: httpx's own handling
        assert isinstance(response.stream, httpx.SyncByteStream)
        drop = (b"content-encoding", b"content-length") if ours else ()
        stream: httpx.SyncByteStream = (
            _Inflated(response.stream, encodings) if ours else response.stream
        )
        if limit is not None:  # refused when read (the status and headers stay readable)
            stream = _Capped(stream, limit)  # a compressed answer counts inflated
        return httpx.Response(
            response.status_code,
            headers=[(k, v) for k, v in response.headers.raw if k.lower() not in drop],
            stream=stream,
            extensions=response.extensions,
        )

    def _limit(self, request: httpx.Request, status: int) -> int | None:
        """The cap on this answer: the request's own, else the transport's; errors' at most."""
        asked = request.extensions.get(MAX_BODY)
        limit = int(asked) if isinstance(asked, int) else self.max_body
        if status >= 400:
            return min(limit, ERROR_BODY_BYTES) if limit is not None else ERROR_BODY_BYTES
        return limit

    def close(self) -> None:
        """Close the inner transport."""
        self.inner.close()
