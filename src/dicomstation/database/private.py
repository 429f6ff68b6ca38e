"""Private folders and files of a database (0700 / 0600 whatever the umask), disk errors.

Modes are set with ``chmod`` after creation rather than by changing the process
umask, which is global state shared with every thread and library.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

from dicomstation.errors import DatabaseError, DiskFullError

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "copy_private",
    "database_error",
    "is_disk_full",
    "make_private_dirs",
    "staging_full",
    "touch_private",
]

DIR_MODE = 0o700
FILE_MODE = 0o600
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_SQLITE_FULL = 13


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and missing parents; the folders created here get mode 0700."""
    missing: list[Path] = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:
            continue  # another process made it first: its mode is its creator's
        os.chmod(folder, DIR_MODE)


def touch_private(path: Path) -> None:
    """Create the empty file ``path`` with mode 0600 unless it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def copy_private(source: str, target: str) -> None:
    """Copy ``source`` to the new file ``target`` (mode 0600), in the kernel when it can."""
    with open(source, "rb") as src:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with open(fd, "wb") as dst:
            os.fchmod(fd, FILE_MODE)
            size = os.fstat(src.fileno()).st_size
            offset = 0
            try:
                while offset < size:
                    sent = os.sendfile(fd, src.fileno(), offset, size - offset)
                    if sent == 0:
                        break
                    offset += sent
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.ENOSYS) or offset:
                    raise
                shutil.copyfileobj(src, dst)  # no sendfile between these file systems


def is_disk_full(exc: BaseException) -> bool:
    """True for ENOSPC / EDQUOT and SQLITE_FULL."""
    if isinstance(exc, OSError):
        return exc.errno in _FULL_ERRNOS
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL
    return False


def database_error(exc: BaseException, what: str, root: Path) -> DatabaseError:
    """A :class:`DatabaseError` for ``exc`` (a :class:`DiskFullError` if the disk is full)."""
    if is_disk_full(exc):
        return DiskFullError(f"disk full: {what} in {root} ({exc})")
    return DatabaseError(f"{what} in {root}: {exc}")


def staging_full(root: Path, imported: int, total: int) -> DiskFullError:
    """The error of an import stopped because staged copies no longer fit."""
    return DiskFullError(
        f"disk full: cannot stage more copies into {root}; imported {imported} of {total}"
        " files, free space and import again (what is present is skipped)"
    )
