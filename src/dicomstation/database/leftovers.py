"""What dead processes left in ``incoming/``: indexed when complete, removed when not.

Naming convention of the staging area (shared with every writer of the package):

``incoming/<purpose>.<pid>.<id>/``
    A staging folder (:meth:`Database.staging_dir`) of the process ``pid``.
    While that process runs, nobody else touches the folder.
``*.part``
    A file still being written; never indexed from here, removed with the folder;
    except, in a folder of purpose ``recv``, one of mode :data:`COMPLETE_PART_MODE`
    (``0400``): a receiver sets that mode once the instance is complete and checked,
    and fsyncs the file (data and mode) before acknowledging it. Its name was made
    durable before (the receiver creates its names in batches and fsyncs the folder
    once), so after a crash it is there and complete: indexed like a ``.dcm``.
``*.dcm`` in a folder of purpose ``recv`` (:data:`COMPLETE_PURPOSES`)
    A complete instance (written, fsynced, renamed from ``.part``) that a listener
    had not indexed yet: a later open indexes it instead of deleting it.
``journal/journal.<pid>.<id>`` (beside ``incoming/``)
    The :mod:`.journal` of a database writer, replayed first.

Each leftover is first claimed by renaming it to ``<purpose>.<our pid>.<id>`` (one
rename wins), so two processes opening the database at once never work on the
same folder, and a sweeper killed midway leaves a folder the next open takes up.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import stat
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from dicomstation.database.journal import recover
from dicomstation.errors import DatabaseError
from dicomstation.models import TransferReport

__all__ = ["COMPLETE_PART_MODE", "COMPLETE_PURPOSES", "process_alive", "sweep"]

COMPLETE_PURPOSES = frozenset({"recv"})
#: mode of a ``.part`` in a ``recv`` folder that is complete (written, checked, fsynced)
COMPLETE_PART_MODE = 0o400
_log = logging.getLogger("dicomstation.database")


def process_alive(pid: int) -> bool:
    """True if a process ``pid`` exists (also when it is another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(name: str) -> tuple[str, int | None]:
    parts = name.split(".")
    owner = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
    return parts[0], owner


def _claim(entry: Path, purpose: str) -> Path | None:
    """Rename ``entry`` to a name of this process; None if another process was first."""
    claimed = entry.with_name(f"{purpose}.{os.getpid()}.{uuid.uuid4().hex}")
    try:
        os.rename(entry, claimed)
    except FileNotFoundError:
        return None
    return claimed


def _complete(path: Path) -> bool:
    """A complete received file: ``*.dcm``, or ``*.part`` of mode COMPLETE_PART_MODE."""
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        return False
    if path.suffix == ".dcm":
        return True
    return path.suffix == ".part" and stat.S_IMODE(info.st_mode) == COMPLETE_PART_MODE


def _index(folder: Path, add: Callable[[list[Path]], TransferReport]) -> None:
    complete = sorted(p for p in folder.rglob("*") if _complete(p))
    if not complete:
        return
    report = add(complete)
    _log.info(
        "%s: indexed %d complete received file(s), %d already present, %d refused",
        folder.parent,
        len(report.succeeded),
        len(report.skipped),
        len(report.failed),
    )
    for source, reason in report.failed.items():
        _log.warning("removed an incomplete leftover %s: %s", source, reason)


def _settle(
    entry: Path,
    conn: sqlite3.Connection,
    lock: threading.RLock,
    add: Callable[[list[Path]], TransferReport],
) -> None:
    purpose, _ = _owner(entry.name)
    claimed = _claim(entry, purpose)
    if claimed is None:
        return
    if purpose == "journal" and claimed.is_file():
        with lock:
            recover(conn, claimed)
    elif claimed.is_dir():
        if purpose in COMPLETE_PURPOSES:
            _index(claimed, add)
        shutil.rmtree(claimed, ignore_errors=True)
    else:
        claimed.unlink(missing_ok=True)


def sweep(
    folders: list[Path],
    conn: sqlite3.Connection,
    lock: threading.RLock,
    add: Callable[[list[Path]], TransferReport],
) -> None:
    """Settle the leftovers of processes that no longer run in ``folders`` (journals first).

    ``add`` indexes complete files by moving them into the store
    (``Database.add_files``). A leftover that cannot be settled now (disk full, a
    busy index) is kept, and logged, for the next open.
    """
    entries: list[Path] = []
    for folder in folders:
        try:
            entries += folder.iterdir()
        except OSError as exc:
            _log.warning("cannot look for leftovers in %s: %s", folder, exc)
    entries.sort(key=lambda e: not e.name.startswith("journal."))
    for entry in entries:
        _, owner = _owner(entry.name)
        if owner is not None and process_alive(owner):
            continue
        try:
            _settle(entry, conn, lock, add)
        except (OSError, sqlite3.Error, DatabaseError) as exc:
            _log.warning("kept staging leftover %s for the next open: %s", entry, exc)
