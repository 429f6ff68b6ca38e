"""Reading DICOMweb answers within :class:`~dicomstation.config.ClientLimits`.

A server decides how much it sends; these readers decide how much we take.
:func:`read_capped` reads a whole (small) answer but refuses it as soon as it
grows beyond a cap; :class:`JsonArrayStream` parses a JSON array of objects as
it streams in, yielding each object once complete, so a caller that wants five
results reads five results' worth of bytes, whatever the server sends after
them, and a larger-than-allowed answer is refused without being held whole.
Every refusal is a :class:`~dicomstation.errors.ProtocolError` naming the
server, the operation and the setting to raise.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

import httpx

from dicomstation.errors import ProtocolError

__all__ = ["JsonArrayStream", "read_capped", "read_capped_chunks", "too_large"]

_SPACE = re.compile(r"[ \t\r\n]*")
_START, _FIRST, _VALUE, _SEPARATOR, _DONE = range(5)


def too_large(
    what: str, limit: int, key: str, *, server: str, operation: str, uid: str | None
) -> ProtocolError:
    """The error for an answer beyond a cap (names the limit and the setting to change)."""
    return ProtocolError(
        f"{what} larger than {limit:,} bytes; refused (raise limits.{key} in the "
        "server's settings if this is expected)",
        server=server,
        operation=operation,
        uid=uid,
    )


def _declared(response: httpx.Response) -> int:
    value = response.headers.get("content-length", "")
    return int(value) if value.isdigit() else -1


def read_capped_chunks(
    chunks: Iterable[bytes | memoryview],
    limit: int,
    key: str,
    *,
    server: str,
    operation: str,
    uid: str | None = None,
) -> bytes:
    """The joined ``chunks`` (a frame, a rendered image), refused beyond ``limit`` bytes."""
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise too_large("answer", limit, key, server=server, operation=operation, uid=uid)
    return bytes(body)


def read_capped(
    response: httpx.Response,
    limit: int,
    key: str,
    *,
    server: str,
    operation: str,
    uid: str | None = None,
) -> bytes:
    """The body of a streamed ``response``, refused once it exceeds ``limit`` bytes."""
    if _declared(response) > limit:
        raise too_large("answer", limit, key, server=server, operation=operation, uid=uid)
    return read_capped_chunks(
        response.iter_bytes(), limit, key, server=server, operation=operation, uid=uid
    )


class JsonArrayStream:
    """The objects of a streamed JSON array answer, parsed incrementally.

    Iterate to get the objects; :meth:`close` (also called when iteration ends)
    closes the response, so stopping early never reads the rest. The answer is
    refused beyond ``limit`` bytes; an element that is not an object, or JSON
    that is malformed or truncated, is a ProtocolError. A failed parse of a
    partial element is retried only once the buffer has doubled, so a large
    element costs linear, not quadratic, time.
    """

    def __init__(
        self,
        response: httpx.Response,
        limit: int,
        *,
        server: str,
        operation: str,
        uid: str | None = None,
    ) -> None:
        self.response = response
        self.limit = limit
        self.server, self.operation, self.uid = server, operation, uid
        self._decoder = json.JSONDecoder()
        self._text = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._buf = ""
        self._pos = 0
        self._pending: list[str] = []
        self._pending_len = 0
        self._need = 0  # pending characters wanted before the next parse attempt
        self._state = _START

    def close(self) -> None:
        """Close the response (the rest of the answer is never read)."""
        self.response.close()

    def _fail(self, message: str) -> ProtocolError:
        return ProtocolError(message, server=self.server, operation=self.operation, uid=self.uid)

    def _too_large(self) -> ProtocolError:
        return too_large(
            "JSON answer",
            self.limit,
            "max_qido_bytes",
            server=self.server,
            operation=self.operation,
            uid=self.uid,
        )

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            yield from self._objects()
        finally:
            self.close()

    def _objects(self) -> Iterator[dict[str, Any]]:
        received = 0
        if _declared(self.response) > self.limit:
            raise self._too_large()
        for chunk in self.response.iter_bytes():
            received += len(chunk)
            if received > self.limit:
                raise self._too_large()
            self._add(chunk, final=False)
            if self._pending_len >= self._need:
                yield from self._parse(final=False)
        self._add(b"", final=True)
        yield from self._parse(final=True)
        if self._state not in (_START, _DONE):
            raise self._fail("JSON answer truncated (the array is not closed)")

    def _add(self, chunk: bytes, *, final: bool) -> None:
        try:
            text = self._text.decode(chunk, final)
        except UnicodeDecodeError:
            raise self._fail("JSON answer is not UTF-8") from None
        if text:
            self._pending.append(text)
            self._pending_len += len(text)

    def _parse(self, *, final: bool) -> Iterator[dict[str, Any]]:
        if self._pending:
            self._buf = self._buf[self._pos :] + "".join(self._pending)
            self._pos, self._pending, self._pending_len = 0, [], 0
        while (token := self._next_token()) is not None:
            if self._state == _START:
                if token != "[":
                    raise self._fail("JSON answer is not an array")
                self._pos, self._state = self._pos + 1, _FIRST
            elif self._state == _SEPARATOR or (self._state == _FIRST and token == "]"):
                if token not in ",]":
                    raise self._fail("malformed JSON in the answer (expected , or ])")
                self._pos += 1
                self._state = _VALUE if token == "," else _DONE
            elif self._state == _DONE:
                raise self._fail("malformed JSON in the answer (data after the array)")
            else:
                obj = self._value(final)
                if obj is None:
                    return
                yield obj

    def _next_token(self) -> str | None:
        match = _SPACE.match(self._buf, self._pos)
        self._pos = match.end() if match else self._pos
        return self._buf[self._pos] if self._pos < len(self._buf) else None

    def _value(self, final: bool) -> dict[str, Any] | None:
        try:
            obj, end = self._decoder.raw_decode(self._buf, self._pos)
        except json.JSONDecodeError:
            if final:
                raise self._fail("malformed JSON in the answer") from None
            self._need = max(65536, len(self._buf) - self._pos)  # retry once doubled
            return None
        if not isinstance(obj, dict):
            raise self._fail("the answer is not a list of DICOM JSON objects")
        self._pos, self._state, self._need = end, _SEPARATOR, 0
        return obj
