"""Batched, atomic writes of the index: insert scanned files, delete rows.

Each batch is one ``BEGIN IMMEDIATE`` transaction, and every file move under
``files/`` happens inside it: the rows already present are read after the write
lock is taken, files are moved into place, rows inserted, then committed; if
anything fails the moves are undone before the lock is released. So a row never
points at a missing or partial file, two processes never both claim one
instance (the second finds it present and counts it as skipped), and no process
moves or removes a file another process has committed. The moves are written
to the :class:`~.journal.Journal` first, so a killed process is undone on open.
"""

from __future__ import annotations

import contextlib
import enum
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from dicomstation.database.importer import Scanned
from dicomstation.database.journal import DELETE, PLACE, Journal
from dicomstation.database.private import FILE_MODE, database_error, make_private_dirs
from dicomstation.database.rows import Rows
from dicomstation.models import Level, TransferReport

__all__ = ["Mode", "delete_rows", "insert_batch", "insert_encoded", "present_uids"]


class Mode(enum.Enum):
    """How an ingested file reaches the store."""

    COPY = "copy"  # a staged copy is moved into place
    MOVE = "move"  # the source itself is moved into place (duplicates deleted)
    REFERENCE = "reference"  # indexed where it is, never deleted by the database
    WRITE = "write"  # bytes held in memory, written straight into place (insert_encoded)


_WRITE_FLAGS = (
    os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
)


def _target(files: Path, fields: dict[str, object]) -> str:
    # a string, not a Path: built once per instance, for the journal and the move (the
    # UIDs are checked safe as names by the scanner: joining them is os.path.join's result)
    sep = os.sep
    study, series = fields["StudyInstanceUID"], fields["SeriesInstanceUID"]
    return f"{files}{sep}{study}{sep}{series}{sep}{fields['SOPInstanceUID']}.dcm"


def _place(item: Scanned, target: str, mode: Mode, folders: set[str]) -> str:
    if mode is Mode.REFERENCE:
        return os.path.abspath(item.source)
    folder = os.path.dirname(target)
    if folder not in folders:  # a series' folder is made once per batch, not per file
        make_private_dirs(Path(folder))
        folders.add(folder)
    if mode is Mode.MOVE:  # written by another part of dicomstation: make it private
        os.chmod(item.source, FILE_MODE)
    os.replace(_origin(item, mode), target)
    return target


def _origin(item: Scanned, mode: Mode) -> str:
    return item.staged if mode is Mode.COPY and item.staged else item.source


def _undo(placed: list[tuple[Scanned, str]], mode: Mode) -> None:
    for item, target in reversed(placed):
        with contextlib.suppress(OSError):  # best effort; the journal covers the rest
            if mode is Mode.MOVE:
                os.replace(target, item.source)
            elif mode is Mode.COPY and item.staged:  # back to staging (a retry may use it)
                os.replace(target, item.staged)


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is open (SQLite ends it itself on SQLITE_FULL)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _discard(item: Scanned, mode: Mode) -> None:
    if mode is Mode.COPY and item.staged:
        Path(item.staged).unlink(missing_ok=True)
    elif mode is Mode.MOVE:
        Path(item.source).unlink(missing_ok=True)


def _rows(conn: sqlite3.Connection, placed: list[tuple[Scanned, str]], mode: Mode) -> None:
    """Insert the rows of a batch's placed files (tests kill a writer here, before COMMIT)."""
    rows = Rows(conn)
    owned = mode is not Mode.REFERENCE
    for item, path in placed:
        rows.add(item, path, owned)
    rows.insert()


def present_uids(conn: sqlite3.Connection, uids: list[str]) -> set[str]:
    """The subset of ``uids`` that has an instance row."""
    present: set[str] = set()
    for i in range(0, len(uids), 500):
        part = uids[i : i + 500]
        marks = ",".join("?" * len(part))
        rows = conn.execute(f"SELECT sop_uid FROM instances WHERE sop_uid IN ({marks})", part)
        present.update(r[0] for r in rows)
    return present


def _sort(
    conn: sqlite3.Connection, batch: list[Scanned], mode: Mode
) -> tuple[list[Scanned], list[str], dict[str, str]]:
    """Split a batch (inside the transaction) into new items, present ones, failures.

    An instance already present counts as skipped even if its copy could not be
    staged (a re-import after a disk-full failure finds what was kept).
    """
    uids = [str(s.fields["SOPInstanceUID"]) for s in batch if s.fields is not None]
    present = present_uids(conn, uids)
    new: list[Scanned] = []
    skipped: list[str] = []
    failed: dict[str, str] = {}
    for item in batch:
        uid = str(item.fields["SOPInstanceUID"]) if item.fields is not None else None
        if uid is not None and uid in present:
            skipped.append(item.source)
            _discard(item, mode)
        elif uid is None or item.error:
            failed[item.source] = item.error or "unknown error"
        else:
            present.add(uid)
            new.append(item)
    return new, skipped, failed


def insert_batch(
    conn: sqlite3.Connection,
    files: Path,
    batch: list[Scanned],
    mode: Mode,
    journal: Journal | None = None,
) -> TransferReport:
    """Place and index one batch in a single transaction; report per source file.

    ``journal`` records the moves first (needed for crash recovery unless ``mode``
    is REFERENCE, which moves nothing).

    Raises
    ------
    DatabaseError
        (:class:`~dicomstation.errors.DiskFullError` when the disk is full) if the
        batch cannot be indexed; nothing of the batch is kept, sources are left as
        they were.
    """
    placed: list[tuple[Scanned, str]] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            new, skipped, failed = _sort(conn, batch, mode)
            targets = [_target(files, s.fields or {}) for s in new]
            if new and journal is not None and mode is not Mode.REFERENCE:
                back = mode is Mode.MOVE  # a crash moves sources back, removes copies
                sources = (s.source if back else "" for s in new)
                journal.write(PLACE, zip(targets, sources, strict=False))
            folders: set[str] = set()
            for item, target in zip(new, targets, strict=True):
                placed.append((item, _place(item, target, mode, folders)))
            _rows(conn, placed, mode)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            _undo(placed, mode)
            raise
        finally:
            if journal is not None:
                journal.clear()
    except (OSError, sqlite3.Error) as exc:
        raise database_error(
            exc, "cannot index files (nothing kept from this batch)", files.parent
        ) from exc
    return TransferReport(
        "import",
        tuple(s.source for s, _ in placed),
        tuple(skipped),
        failed,
        bytes_transferred=sum(s.size for s, _ in placed),
    )


def _write_private(path: str, data: bytes | memoryview) -> None:
    """Create (or replace a stray) ``path`` holding ``data``, mode 0600 (no chmod, no rename)."""
    fd = os.open(path, _WRITE_FLAGS, FILE_MODE)
    try:
        view, done = memoryview(data).cast("B"), 0
        while done < len(view):
            done += os.write(fd, view[done:])
    finally:
        os.close(fd)


def _write_placed(
    new: list[Scanned], targets: list[str], data: dict[int, bytes | memoryview], begun: list[str]
) -> None:
    """Write the new items' bytes at their targets, adding each target to ``begun`` first."""
    folders: set[str] = set()
    for item, target in zip(new, targets, strict=True):
        folder = os.path.dirname(target)
        if folder not in folders:
            make_private_dirs(Path(folder))
            folders.add(folder)
        begun.append(target)
        _write_private(target, data[id(item)])


def insert_encoded(
    conn: sqlite3.Connection,
    files: Path,
    items: list[tuple[Scanned, bytes | memoryview]],
    journal: Journal,
) -> TransferReport:
    """Write instances held in memory into place and index them, in one transaction.

    Each item pairs a scan of the bytes (``Scanned.source`` names the instance in
    the report, ``Scanned.size`` is ``len(bytes)``) with the bytes. As in
    :func:`insert_batch`, files under ``files/`` change only inside the write
    transaction: the targets are journaled (a crash removes those without a
    committed row), written, their rows inserted, then committed. Compared with
    writing a staging file and moving it, each instance costs one file creation,
    no rename, chmod or stat. A target file without a row (nobody else writes
    there while we hold the lock) is replaced.

    Raises
    ------
    DatabaseError
        (:class:`~dicomstation.errors.DiskFullError` when the disk is full) if the
        batch cannot be indexed; nothing of the batch is kept.
    """
    data = {id(item): blob for item, blob in items}  # sources may repeat (a duplicate part)
    begun: list[str] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            new, skipped, failed = _sort(conn, [item for item, _ in items], Mode.WRITE)
            targets = [_target(files, s.fields or {}) for s in new]
            if new:
                journal.write(PLACE, ((target, "") for target in targets))
            _write_placed(new, targets, data, begun)
            _rows(conn, list(zip(new, begun, strict=True)), Mode.WRITE)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            for target in begun:
                with contextlib.suppress(OSError):
                    os.unlink(target)
            raise
        finally:
            journal.clear()
    except (OSError, sqlite3.Error) as exc:
        raise database_error(
            exc, "cannot index fetched instances (nothing kept from this batch)", files.parent
        ) from exc
    placed = tuple(s.source for s in new)
    return TransferReport(
        "import", placed, tuple(skipped), failed, bytes_transferred=sum(s.size for s in new)
    )


def _delete_statements(
    conn: sqlite3.Connection, level: Level, column: str, uid: str
) -> list[sqlite3.Row]:
    rows = conn.execute(
        "SELECT i.sop_uid, i.path, i.owned FROM instances i JOIN series se"
        f" ON se.series_uid = i.series_uid WHERE {column} = ?",
        (uid,),
    ).fetchall()
    conn.executemany("DELETE FROM instances WHERE sop_uid = ?", [(r[0],) for r in rows])
    if level is Level.STUDY:
        conn.execute("DELETE FROM studies WHERE study_uid = ?", (uid,))
    elif level is Level.SERIES:
        conn.execute("DELETE FROM series WHERE series_uid = ?", (uid,))
    conn.execute(
        "DELETE FROM series WHERE series_uid NOT IN (SELECT DISTINCT series_uid FROM instances)"
    )
    conn.execute(
        "DELETE FROM studies WHERE study_uid NOT IN (SELECT DISTINCT study_uid FROM series)"
    )
    conn.execute(
        "DELETE FROM patients WHERE patient_key NOT IN (SELECT DISTINCT patient_key FROM studies)"
    )
    return rows


def _to_trash(moves: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """Make the (original, trash) moves, remove emptied folders; return the moves made."""
    moved: list[tuple[Path, Path]] = []
    for path, spare in moves:
        try:
            os.replace(path, spare)
        except FileNotFoundError:
            continue
        moved.append((path, spare))
    for path, _ in moves:
        with contextlib.suppress(OSError):
            path.parent.rmdir()
            path.parent.parent.rmdir()
    return moved


def _restore(moved: list[tuple[Path, Path]]) -> None:
    for path, spare in reversed(moved):
        with contextlib.suppress(OSError):
            make_private_dirs(path.parent)
            os.replace(spare, path)


def delete_rows(
    conn: sqlite3.Connection,
    level: Level,
    column: str,
    uid: str,
    trash: Callable[[], Path],
    journal: Journal,
) -> int:
    """Delete the instances under ``uid`` with their owned files; return the count.

    Owned files are moved to a new ``trash()`` folder inside the transaction (so
    no other process can place a new file at the same path meanwhile), and the
    folder is removed after the commit.
    """
    folder: Path | None = None
    moved: list[tuple[Path, Path]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        rows = _delete_statements(conn, level, column, uid)
        owned = [Path(r[1]) for r in rows if r[2]]
        if owned:
            folder = trash()
            moves = [(p, folder / f"{i}.dcm") for i, p in enumerate(owned)]
            journal.write(DELETE, moves)
            moved = _to_trash(moves)
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        _restore(moved)
        moved = []
        raise
    finally:
        journal.clear()
        if folder is not None:
            for _, spare in moved:
                spare.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()
    return len(rows)
