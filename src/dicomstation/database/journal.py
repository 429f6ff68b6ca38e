"""What a writer is about to do under ``files/``, so that a crash can be undone on open.

Every change to ``files/`` happens inside the SQLite write transaction that
records it (``BEGIN IMMEDIATE`` ... ``COMMIT``), so no other process sees a file
without its row or moves one under another's feet. A process killed between
moving files and committing would still leave files without rows (or rows
whose files sit in a trash folder); before it moves anything it therefore
writes the moves to ``journal/journal.<pid>.<id>``, and empties that file after
the commit. Opening the database replays the journals of dead processes
(:func:`recover`): a placement whose row was not committed is moved back or
removed, a deletion that was not committed gets its files back.

The journal is not fsynced: it covers a killed process, not a power cut.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import Iterable
from pathlib import Path

from dicomstation.database.private import FILE_MODE

__all__ = ["DELETE", "PLACE", "Journal", "recover"]

PLACE = "place"  # lines: target <TAB> source to move back to ("" for a copy: remove)
DELETE = "delete"  # lines: original <TAB> trash path it was moved to


class Journal:
    """The journal file of one :class:`~dicomstation.database.Database` in ``folder``.

    The file is made on first use and rewritten in place for every transaction (an
    empty journal means nothing is in flight); :meth:`close` removes it.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._path: Path | None = None
        self._fd = -1
        self._pid = 0
        self._dirty = False

    def _open(self) -> int:
        if self._fd < 0 or self._pid != os.getpid():  # a forked child gets its own
            self._pid = os.getpid()
            self._path = self.folder / f"journal.{self._pid}.{uuid.uuid4().hex}"
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
            os.fchmod(self._fd, FILE_MODE)
        return self._fd

    def write(self, kind: str, moves: Iterable[tuple[object, object]]) -> None:
        """Record the moves about to be made (``kind`` is :data:`PLACE` or :data:`DELETE`)."""
        data = (kind + "\n" + "".join(f"{a}\t{b}\n" for a, b in moves)).encode()
        fd = self._open()
        self._dirty = True
        os.ftruncate(fd, 0)
        view, offset = memoryview(data), 0
        while offset < len(data):
            offset += os.pwrite(fd, view[offset:], offset)

    def clear(self) -> None:
        """The moves are committed (or undone): forget them."""
        if self._dirty and self._fd >= 0 and self._pid == os.getpid():
            os.ftruncate(self._fd, 0)
            self._dirty = False

    def close(self) -> None:
        """Remove the journal file (call when no transaction is in flight)."""
        if self._fd >= 0 and self._pid == os.getpid():
            os.close(self._fd)
            if self._path is not None:
                with contextlib.suppress(FileNotFoundError):
                    self._path.unlink()
        self._fd = -1
        self._path = None


def _committed(conn: sqlite3.Connection, target: str) -> bool:
    """True if an instance row points at ``target`` (named ``<SOP Instance UID>.dcm``)."""
    row = conn.execute(
        "SELECT path FROM instances WHERE sop_uid = ?", (Path(target).stem,)
    ).fetchone()
    return row is not None and row[0] == target


def _replay(conn: sqlite3.Connection, kind: str, a: str, b: str) -> None:
    committed = _committed(conn, a)
    if kind == PLACE and not committed:
        if b and os.path.isdir(os.path.dirname(b)):
            with contextlib.suppress(FileNotFoundError):
                os.replace(a, b)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(a)
    elif kind == DELETE and committed and os.path.exists(b) and not os.path.exists(a):
        os.makedirs(os.path.dirname(a), mode=0o700, exist_ok=True)
        os.replace(b, a)


def recover(conn: sqlite3.Connection, journal: Path) -> None:
    """Undo what the dead writer of ``journal`` moved but did not commit; remove the journal."""
    lines = journal.read_text().splitlines()
    if lines and lines[0] in (PLACE, DELETE):
        conn.execute("BEGIN IMMEDIATE")  # nobody places or removes files meanwhile
        try:
            for line in lines[1:]:
                a, _, b = line.partition("\t")
                if a:
                    _replay(conn, lines[0], a, b)
        finally:
            conn.execute("COMMIT")
    journal.unlink(missing_ok=True)
