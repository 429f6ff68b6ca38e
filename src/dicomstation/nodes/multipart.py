"""Streaming multipart/related (RFC 2046 / PS3.18 8.7) parser and writer.

The parser reads an iterable of byte chunks (e.g. ``response.iter_bytes()``) and
yields :class:`Part` objects whose bodies are themselves streamed: memory stays
bounded by the chunk size whatever the size of a part or of the whole message.
Every byte is scanned a bounded number of times (the buffer never holds more than
one chunk plus the delimiter length), so parsing is linear in the message size,
unlike parsers that re-scan a growing buffer.

The writer turns parts (headers + chunk iterators, or files read lazily) into a
byte generator suitable for a streamed HTTP request body. A generator can only be
consumed once, so callers that may retry build a new one per attempt.

Both are protocol-agnostic and reused by the DICOMweb server (``server/``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from dicomstation.errors import ProtocolError

__all__ = [
    "Part",
    "boundary_of",
    "close_delimiter",
    "file_parts",
    "iter_multipart",
    "iter_parts",
    "multipart_content_type",
    "new_boundary",
    "parse_content_type",
    "part_head",
]

CRLF = b"\r\n"
_MAX_HEADER_BYTES = 64 * 1024
_CHUNK = 1024 * 1024


def _split_params(value: str) -> list[str]:
    """Split on ``;`` outside quoted strings (quotes and escapes are kept)."""
    fields: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            fields.append("".join(current))
            current = []
            continue
        current.append(char)
    fields.append("".join(current))
    return fields


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        out: list[str] = []
        escaped = False
        for char in inner:
            if char == "\\" and not escaped:
                escaped = True
                continue
            out.append(char)
            escaped = False
        return "".join(out)
    return value


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type into its lower-cased media type and parameters.

    Quoted parameter values may contain ``;`` and ``=`` (as in
    ``type="application/octet-stream; transfer-syntax=..."``); quotes are removed.
    Parameter names are lower-cased, values kept as sent.
    """
    if ";" not in value:  # no parameters (every part of most answers): no scan
        return value.strip().lower(), {}
    fields = _split_params(value)
    params: dict[str, str] = {}
    for item in fields[1:]:
        name, sep, val = item.partition("=")
        if sep:
            params[name.strip().lower()] = _unquote(val)
    return fields[0].strip().lower(), params


def boundary_of(content_type: str) -> str:
    """Return the boundary of a ``multipart/*`` Content-Type.

    Raises
    ------
    ValueError
        If the type is not multipart or has no boundary.
    """
    media, params = parse_content_type(content_type)
    if not media.startswith("multipart/"):
        raise ValueError(f"expected a multipart content type, got {content_type!r}")
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise ValueError(f"multipart content type without a valid boundary: {content_type!r}")
    return boundary


def new_boundary() -> str:
    """A random boundary (never found in DICOM data by chance)."""
    return f"dicomstation-{uuid.uuid4().hex}"


def multipart_content_type(boundary: str, part_type: str = "application/dicom") -> str:
    """The Content-Type header of a multipart/related message."""
    return f'multipart/related; type="{part_type}"; boundary={boundary}'


class Part:
    """One part of a multipart message: headers and a body streamed on demand.

    The body must be consumed (:meth:`chunks`, :meth:`views` or :meth:`read`)
    before the next part is requested; whatever is left unread is skipped.
    """

    def __init__(self, headers: Mapping[str, str], body: Iterator[bytes | memoryview]) -> None:
        self.headers = dict(headers)
        self._body = body

    @property
    def content_type(self) -> str:
        """The part's media type, lower-cased, without parameters ('' if absent)."""
        return parse_content_type(self.headers.get("content-type", ""))[0]

    def chunks(self) -> Iterator[bytes]:
        """Yield the body in chunks (bytes) as it arrives."""
        for piece in self._body:
            yield piece if isinstance(piece, bytes) else bytes(piece)

    def views(self) -> Iterator[bytes | memoryview]:
        """Yield the body as it arrives, without copying it (read-only views).

        For consumers that only write or hash the data (``file.write`` takes a
        memoryview): it saves a copy of every byte. A view stays valid after the
        next one is yielded (it keeps its immutable buffer alive).
        """
        yield from self._body

    def read(self) -> bytes:
        """The whole body (for small parts: JSON, frames, rendered images)."""
        return b"".join(self._body)


class _Parser:
    """The state machine behind :func:`iter_parts` (one instance per message).

    ``_buf[_pos:]`` is the unread data. Body pieces are yielded as memoryview
    slices of the received chunks (no copy), and a new chunk replaces the buffer
    instead of being appended to it whenever the unread rest is only a possible
    delimiter prefix, so each body byte is copied at most once here (usually never).
    """

    def __init__(
        self,
        chunks: Iterable[bytes],
        boundary: str,
        error: ProtocolError,
        trust_length: bool = False,
    ) -> None:
        self._trust_length = trust_length
        self._source = iter(chunks)
        self._delim = CRLF + b"--" + boundary.encode("latin-1")
        self._buf = CRLF  # so a delimiter at the very start matches like any other
        self._view = memoryview(self._buf)
        self._pos = 0
        self._error = error

    def _fail(self, message: str) -> ProtocolError:
        err = self._error
        return ProtocolError(message, server=err.server, operation=err.operation, uid=err.uid)

    def _next_chunk(self) -> bytes | None:
        for chunk in self._source:
            if chunk:
                return bytes(chunk) if not isinstance(chunk, bytes) else chunk
        return None

    def _set(self, buf: bytes, pos: int) -> None:
        self._buf, self._pos = buf, pos
        self._view = memoryview(buf)

    def _more(self) -> bool:
        chunk = self._next_chunk()
        if chunk is None:
            return False
        self._set(self._buf[self._pos :] + chunk if self._unread() else chunk, 0)
        return True

    def _unread(self) -> int:
        return len(self._buf) - self._pos

    def _find_delimiter(self) -> bool:
        """Skip the preamble; False when the message ends without any boundary."""
        keep = len(self._delim) - 1
        while True:
            found = self._buf.find(self._delim, self._pos)
            if found >= 0:
                self._pos = found + len(self._delim)
                return True
            self._pos = max(self._pos, len(self._buf) - keep)
            if not self._more():
                return False

    def _after_delimiter(self) -> bool:
        """Consume the rest of a boundary line; return True for the close delimiter."""
        while self._unread() < 2 and self._more():
            pass
        if self._buf[self._pos : self._pos + 2] == b"--":
            return True
        while (end := self._buf.find(CRLF, self._pos)) < 0:
            if self._unread() > 1024 or not self._more():
                raise self._fail("truncated or malformed boundary line")
        if self._buf[self._pos : end].strip(b" \t"):
            raise self._fail("garbage after a multipart boundary")
        self._pos = end + 2
        return False

    def _headers(self) -> dict[str, str]:
        while True:
            if self._buf.startswith(CRLF, self._pos):
                self._pos += 2
                return {}
            end = self._buf.find(CRLF + CRLF, self._pos)
            if end >= 0:
                break
            if self._unread() > _MAX_HEADER_BYTES or not self._more():
                raise self._fail("truncated part headers")
        block = self._buf[self._pos : end]
        self._pos = end + 4
        headers: dict[str, str] = {}
        for line in block.decode("latin-1").split("\r\n"):
            name, sep, value = line.partition(":")
            if not sep:
                raise self._fail(f"malformed part header line {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        return headers

    def _refill_body(self) -> bytes | None:
        """Replace the buffer by the next chunk while inside a body.

        The unread rest (shorter than the delimiter) is returned as body data,
        unless a delimiter starts in it: then the buffer keeps it (a small copy).
        Raises when the message ends here.
        """
        chunk = self._next_chunk()
        if chunk is None:
            raise self._fail("message truncated inside a part (no closing boundary)")
        rest = self._buf[self._pos :]
        if (
            rest
            and (
                len(chunk) < len(self._delim)  # too short to rule out a delimiter in ``rest``
                or (rest + chunk[: len(self._delim)]).find(self._delim) >= 0
            )
        ):
            self._set(rest + chunk, 0)
            return None
        self._set(chunk, 0)
        return rest or None

    def body(self) -> Iterator[bytes | memoryview]:
        """Yield a part's body up to (not including) the next delimiter."""
        keep = len(self._delim) - 1
        while True:
            found = self._buf.find(self._delim, self._pos)
            if found >= 0:
                if found > self._pos:
                    yield self._view[self._pos : found]
                self._pos = found + len(self._delim)
                return
            if self._unread() > keep:
                cut = len(self._buf) - keep
                yield self._view[self._pos : cut]
                self._pos = cut
            rest = self._refill_body()
            if rest is not None:
                yield rest

    def counted(self, length: int) -> Iterator[bytes | memoryview]:
        """Yield a body of ``length`` bytes without searching it; the delimiter must follow.

        For senders that announce each part's Content-Length (WADO-RS servers do):
        the bytes are handed on as views without being scanned for the boundary.
        A part that does not end exactly there is refused (it would otherwise be
        cut at the wrong place).
        """
        left = length
        while left:
            if not self._unread() and not self._more():
                raise self._fail("message truncated inside a part (no closing boundary)")
            take = min(left, self._unread())
            yield self._view[self._pos : self._pos + take]
            self._pos += take
            left -= take
        while self._unread() < len(self._delim):
            if not self._more():
                raise self._fail("message truncated inside a part (no closing boundary)")
        if not self._buf.startswith(self._delim, self._pos):
            raise self._fail(f"a part does not end where its Content-Length ({length}) says")
        self._pos += len(self._delim)

    def parts(self) -> Iterator[Part]:
        if not self._find_delimiter():
            raise self._fail("no multipart boundary found in the body")
        while not self._after_delimiter():
            headers = self._headers()
            length = headers.get("content-length", "")
            trusted = self._trust_length and length.isdigit()
            body = self.counted(int(length)) if trusted else self.body()
            yield Part(headers, body)
            for _ in body:  # skip what the consumer did not read
                pass
        # The epilogue after the close delimiter is ignored, as RFC 2046 says.


def iter_parts(
    chunks: Iterable[bytes],
    boundary: str,
    *,
    server: str = "stream",
    operation: str = "multipart/related",
    uid: str | None = None,
    trust_length: bool = False,
) -> Iterator[Part]:
    """Parse a multipart message from byte chunks, yielding parts as they arrive.

    Parameters
    ----------
    chunks : iterable of bytes
        The message body, in chunks of any size.
    boundary : str
        The boundary from the Content-Type (see :func:`boundary_of`).
    server, operation, uid : str
        Named in the :class:`~dicomstation.errors.ProtocolError` raised on bad input.
    trust_length : bool
        Take a part's Content-Length as where its body ends (checking that the
        delimiter follows there) instead of searching the body for the boundary;
        a part that does not end there is refused.

    Raises
    ------
    ProtocolError
        When no boundary is found, a header block is malformed, or the message
        ends before the close delimiter (a truncated part is never yielded whole).
    """
    error = ProtocolError("", server=server, operation=operation, uid=uid)
    return _Parser(chunks, boundary, error, trust_length).parts()


def part_head(boundary: str, headers: Mapping[str, str]) -> bytes:
    """The delimiter line and header block that open one part."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return b"--" + boundary.encode("latin-1") + CRLF + head.encode("latin-1") + CRLF


def close_delimiter(boundary: str) -> bytes:
    """The close delimiter that ends the message (after each part's trailing CRLF)."""
    return b"--" + boundary.encode("latin-1") + b"--" + CRLF


def iter_multipart(
    parts: Iterable[tuple[Mapping[str, str], Iterable[bytes]]], boundary: str
) -> Iterator[bytes]:
    """Serialise parts (headers, body chunks) to multipart bytes, lazily.

    The length of the result is ``sum(len(part_head) + body + 2) + len(close_delimiter)``,
    which lets a sender announce a Content-Length without building the body.
    """
    for headers, body in parts:
        yield part_head(boundary, headers)
        yield from body
        yield CRLF
    yield close_delimiter(boundary)


def _file_chunks(path: Path, chunk_size: int) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while block := handle.read(chunk_size):
            yield block


def file_parts(
    paths: Iterable[Path], content_type: str = "application/dicom", chunk_size: int = _CHUNK
) -> Iterator[tuple[Mapping[str, str], Iterator[bytes]]]:
    """Parts for :func:`iter_multipart` that read each file lazily, chunk by chunk."""
    for path in paths:
        headers = {"Content-Type": content_type, "Content-Length": str(path.stat().st_size)}
        yield headers, _file_chunks(Path(path), chunk_size)
