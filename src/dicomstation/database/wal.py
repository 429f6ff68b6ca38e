"""Opening an SQLite file in WAL mode while other processes open it too.

Switching a file to WAL takes an exclusive lock. When two connections both hold the
shared lock and both ask for the exclusive one, SQLite sees a deadlock and answers one
of them ``SQLITE_BUSY`` at once, without calling its busy handler: the connection's
busy timeout does not cover it. Processes opening a new database, job ledger or UPS
store together (pipeline workers, ``db import`` runs) meet exactly there, so the switch
is retried until the same timeout has passed.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

__all__ = ["connect_wal"]

_FIRST_PAUSE = 0.002  # seconds; doubled after each busy answer
_LONGEST_PAUSE = 0.05


def connect_wal(
    path: Path, *, timeout: float, check_same_thread: bool = True
) -> sqlite3.Connection:
    """Connect to ``path`` in autocommit mode and switch it to WAL journaling.

    Parameters
    ----------
    path : Path
        The SQLite file (created when missing, as :func:`sqlite3.connect` does).
    timeout : float
        Seconds to wait for other processes' locks, both as the busy timeout and for
        the switch to WAL.
    check_same_thread : bool
        Passed to :func:`sqlite3.connect`.

    Returns
    -------
    sqlite3.Connection
        Open, in WAL mode, with ``isolation_level=None``.

    Raises
    ------
    sqlite3.Error
        When the file cannot be opened, or stays locked for ``timeout`` seconds.
    """
    conn = sqlite3.connect(
        path, timeout=timeout, isolation_level=None, check_same_thread=check_same_thread
    )
    try:
        _switch_to_wal(conn, time.monotonic() + timeout)
    except BaseException:
        conn.close()
        raise
    return conn


def _switch_to_wal(conn: sqlite3.Connection, deadline: float) -> None:
    pause = _FIRST_PAUSE
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY  # primary code
            if not busy or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)  # the other opener finishes its switch meanwhile
        pause = min(2 * pause, _LONGEST_PAUSE)
