"""The parts of a WADO-RS request that need no database: targets, Accept negotiation, parsing.

Used by :mod:`.wado` (the fetcher) and :mod:`.dicomweb` (frames, rendered images).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import httpx

from dicomstation.database.scanner import read_file_meta
from dicomstation.errors import ProtocolError
from dicomstation.nodes.multipart import Part, boundary_of, iter_parts

__all__ = ["DICOM_ACCEPTS", "AcceptNegotiator", "Target", "read_parts", "sop_uid_from_head"]

#: Accept headers tried in order: any transfer syntax (no transcoding, fastest), then
#: the server's default (for servers that refuse ``transfer-syntax=*``).
DICOM_ACCEPTS = (
    'multipart/related; type="application/dicom"; transfer-syntax=*',
    'multipart/related; type="application/dicom"',
)


@dataclass(frozen=True)
class Target:
    """One WADO-RS request: a series (``sop_uid`` None) or one instance.

    ``expected`` lists the instances the request should bring (empty when the
    series was not listed because none of it is local yet).
    """

    study_uid: str
    series_uid: str
    sop_uid: str | None = None
    expected: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        """Resource path relative to the DICOMweb root."""
        path = f"studies/{self.study_uid}/series/{self.series_uid}"
        return path + (f"/instances/{self.sop_uid}" if self.sop_uid else "")

    @property
    def uid(self) -> str:
        """The most specific UID, for messages and reports."""
        return self.sop_uid or self.series_uid


class AcceptNegotiator:
    """Remembers which Accept header a server takes (thread-safe)."""

    def __init__(self, accepts: Sequence[str] = DICOM_ACCEPTS) -> None:
        self._accepts = tuple(accepts)
        self._index = 0
        self._lock = threading.Lock()

    @property
    def current(self) -> str:
        """The Accept header to send now."""
        return self._accepts[self._index]

    def refused(self, accept: str) -> bool:
        """Record that ``accept`` was refused; True if another one is left to try."""
        with self._lock:
            if self._accepts[self._index] == accept and self._index + 1 < len(self._accepts):
                self._index += 1
            return self._accepts[self._index] != accept


def read_parts(
    response: httpx.Response,
    *,
    server: str,
    operation: str,
    uid: str | None,
    chunks: Iterable[bytes] | None = None,
) -> Iterator[Part]:
    """Parts of a streamed multipart/related response; ProtocolError if it is not one.

    ``chunks`` is the body as the caller reads it (default: ``response.iter_bytes()``).
    """
    content_type = response.headers.get("content-type", "")
    try:
        boundary = boundary_of(content_type)
    except ValueError:
        raise ProtocolError(
            f"expected a multipart/related answer, got {content_type or 'none'!r}",
            server=server,
            operation=operation,
            uid=uid,
        ) from None
    # iter_bytes() without a size yields data as it arrives (a size would buffer up to it)
    body = response.iter_bytes() if chunks is None else chunks
    # parts announce their length (a wrong one is refused): their bytes are not searched
    return iter_parts(
        body, boundary, server=server, operation=operation, uid=uid, trust_length=True
    )


def sop_uid_from_head(head: bytes) -> str:
    """MediaStorageSOPInstanceUID from the first bytes of a Part 10 file ('' if absent).

    Runs on every fetched instance, on bytes already in memory (no second open/read).
    """
    found = read_file_meta(head)
    value = found[0].get(0x00020003, b"") if found else b""
    return value.rstrip(b"\x00 ").decode("ascii", "replace")
