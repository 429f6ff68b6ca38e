"""Validation of UIDs that arrive in URLs and query parameters (PS3.5 9.1)."""

from __future__ import annotations

import re

from fastapi import HTTPException

__all__ = ["check_uid", "check_uid_list", "is_uid"]

_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


def is_uid(text: str) -> bool:
    """True when ``text`` is a syntactically valid DICOM UID (digits and dots, <= 64 chars)."""
    return 0 < len(text) <= 64 and _UID.fullmatch(text) is not None


def check_uid(text: str, what: str = "UID") -> str:
    """Return ``text`` if it is a valid UID, else raise a 400 naming it.

    Raises
    ------
    fastapi.HTTPException
        400 Bad Request with a message that names the bad value.
    """
    if not is_uid(text):
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise HTTPException(
            400,
            f"invalid {what} {shown!r}: a UID is 1-64 digits and dots, "
            "with no leading zeros in a component",
        )
    return text


def check_uid_list(text: str, what: str) -> str:
    """Validate a backslash- or comma-separated UID list (QIDO-RS); return it backslash-joined."""
    parts = [p.strip() for p in re.split(r"[\\,]", text) if p.strip()]
    return "\\".join(check_uid(p, what) for p in parts)
