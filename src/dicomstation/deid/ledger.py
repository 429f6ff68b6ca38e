"""Optional re-identification ledger: original -> pseudonym, in a local SQLite file.

Pseudonyms are HMACs and cannot be reversed without it. The ledger is for authorised users at
the site that holds the originals; it is created with mode 0600, never leaves the machine, and
is never written into any output. Many processes may record into one ledger at once (WAL mode,
``INSERT OR IGNORE`` of deterministic pairs, so reruns add nothing).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Protocol

from dicomstation.database.wal import connect_wal
from dicomstation.errors import DatabaseError

__all__ = ["Ledger"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pseudonym (
    kind TEXT NOT NULL,
    original TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    PRIMARY KEY (kind, original)
);
CREATE INDEX IF NOT EXISTS pseudonym_reverse ON pseudonym (pseudonym);
"""


class _Pair(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def original(self) -> str: ...
    @property
    def pseudonym(self) -> str: ...


class Ledger:
    """A local SQLite ledger of original -> pseudonym pairs.

    Parameters
    ----------
    path : Path
        The ledger file (created, mode 0600, when absent).

    Raises
    ------
    DatabaseError
        If the file cannot be opened or is not a ledger.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            if not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            self._conn = connect_wal(self.path, timeout=30.0)
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise DatabaseError(f"re-identification ledger {self.path}: {exc}") from None

    def record(self, pairs: Iterable[_Pair]) -> None:
        """Add pairs (existing ones are kept as they are)."""
        rows = [(p.kind, p.original, p.pseudonym) for p in pairs]
        try:
            with self._conn:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(
                    "INSERT OR IGNORE INTO pseudonym (kind, original, pseudonym) VALUES (?, ?, ?)",
                    rows,
                )
        except sqlite3.Error as exc:
            raise DatabaseError(f"re-identification ledger {self.path}: {exc}") from None

    def original_of(self, pseudonym: str) -> list[tuple[str, str]]:
        """``(kind, original)`` pairs whose pseudonym is ``pseudonym``."""
        rows = self._conn.execute(
            "SELECT kind, original FROM pseudonym WHERE pseudonym = ? ORDER BY kind", (pseudonym,)
        ).fetchall()
        return [(str(k), str(o)) for k, o in rows]

    def pseudonym_of(self, kind: str, original: str) -> str | None:
        """The pseudonym recorded for ``original`` of ``kind``, or None."""
        row = self._conn.execute(
            "SELECT pseudonym FROM pseudonym WHERE kind = ? AND original = ?", (kind, original)
        ).fetchone()
        return str(row[0]) if row else None

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
