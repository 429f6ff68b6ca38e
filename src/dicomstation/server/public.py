"""Error text fit for an HTTP answer: no paths, no process ids, one printable line."""

from __future__ import annotations

import re

__all__ = ["INTERNAL_ERROR", "public_text"]

INTERNAL_ERROR = "internal error of the server (details are in its log)"

# An absolute path (POSIX or Windows) not part of a URL: keep only its last component.
_PATH = re.compile(r"(?<![\w:/.~-])(?:[A-Za-z]:)?[/\\](?:[^\s'\"/\\]+[/\\])*([^\s'\"/\\]*)")
# Staging names carry the process id: "<purpose>.<pid>.<hex>".
_PID = re.compile(r"\b(?:pid|process)\s*[=:]?\s*\d+\b", re.IGNORECASE)
_STAGING = re.compile(r"\b\w+\.\d+\.[0-9a-f]{32}\b")


def public_text(text: str, limit: int = 400) -> str:
    """``text`` with file system paths cut to their last component and pids removed.

    The result is one line of printable ASCII (safe in a header) of at most
    ``limit`` characters.
    """
    text = _PATH.sub(lambda m: m.group(1) or "(path)", text)
    text = _STAGING.sub("(staging)", _PID.sub("process", text))
    text = " ".join(text.split())
    text = text.encode("ascii", "replace").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."
