"""Text from files and the network made safe to print: no control characters, bounded."""

from __future__ import annotations

__all__ = ["printable"]


def printable(text: str, limit: int = 80, *, ascii_only: bool = True) -> str:
    """``text`` with unprintable characters as ``?``, cut at ``limit`` characters (``...``).

    ``ascii_only`` also replaces every non-ASCII character (log lines, DICOM LO values);
    without it, printable non-ASCII text (a patient name in a warning) is kept.
    """
    if ascii_only:
        cleaned = "".join(c if " " <= c <= "~" else "?" for c in text[: limit + 1])
    else:
        cleaned = "".join(c if c.isprintable() else "?" for c in text[: limit + 1])
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "..."
