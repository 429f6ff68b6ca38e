"""Request paths built from UIDs: a UID from an answer never chooses where a request goes.

DICOMweb paths are fixed words, UIDs, frame numbers and commas. A UID taken from a
server's answer (a QIDO-RS match, a UPS-RS workitem) that held ``/``, ``..``, ``?`` or
``%2F`` would otherwise steer the next request to another path of the origin, with the
user's credentials (httpx resolves dot segments). :func:`checked_path` refuses such a
path before anything is sent.
"""

from __future__ import annotations

import re

from dicomstation.errors import ProtocolError

__all__ = ["checked_path"]

_SAFE = re.compile(r"[A-Za-z0-9.,_-]+")


def checked_path(path: str, *, server: str, operation: str, uid: str | None = None) -> str:
    """``path`` (relative, ``/``-separated) when every segment is a plain word, UID or number.

    Raises
    ------
    ProtocolError
        A segment is empty, ``.`` or ``..``, or holds a character no DICOMweb path needs.
    """
    for segment in path.split("/"):
        if segment in (".", "..") or not _SAFE.fullmatch(segment):
            shown = segment if len(segment) <= 80 else segment[:77] + "..."
            raise ProtocolError(
                f"{shown!r} is not a DICOM UID; refusing to request the path {path[:200]!r}",
                server=server,
                operation=operation,
                uid=uid,
            )
    return path
