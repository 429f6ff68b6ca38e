"""multipart/related bodies for WADO-RS responses, streamed from files in chunks.

The parsing side (STOW-RS requests) uses python-multipart's streaming parser;
see :mod:`dicomstation.server.stow`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Part", "multipart_content_type", "new_boundary", "stream_parts"]

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Part:
    """One part: either a file to stream or bytes already in memory."""

    content_type: str
    path: Path | None = None
    data: bytes = b""
    location: str = ""


def new_boundary() -> str:
    """A random boundary that cannot plausibly occur in DICOM data."""
    return "dicomstation-" + secrets.token_hex(16)


def multipart_content_type(boundary: str, part_type: str, syntax: str | None = None) -> str:
    """The Content-Type header of a multipart/related response."""
    value = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return value + (f"; transfer-syntax={syntax}" if syntax else "")


def _part_head(boundary: str, part: Part) -> bytes:
    head = f"--{boundary}\r\nContent-Type: {part.content_type}\r\n"
    if part.location:
        head += f"Content-Location: {part.location}\r\n"
    return (head + "\r\n").encode("latin-1")


def stream_parts(parts: Iterable[Part], boundary: str) -> Iterator[bytes]:
    """Yield a multipart/related body chunk by chunk (files are never read whole)."""
    for part in parts:
        yield _part_head(boundary, part)
        if part.path is not None:
            with open(part.path, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    yield chunk
        else:
            yield part.data
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode("latin-1")
