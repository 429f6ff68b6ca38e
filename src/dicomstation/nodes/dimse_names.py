"""Staging file names for received instances, made durable in batches.

A received instance is acknowledged only once it is safe on disk. Its data and its
complete mode are made durable by one fsync of its file (:mod:`dimse_instance`),
but the file's name (its directory entry) needs an fsync of the folder. So names
are created :data:`BATCH` at a time, empty and open, and the folder is fsynced once
for them: each instance then takes a name that is already durable, and no instance
renames a file or fsyncs the folder itself. Names are counters (nothing from the
network names a path).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from pathlib import Path

__all__ = ["BATCH", "StagingNames", "sync_folder"]

#: staging files created at once (one folder fsync makes their names durable)
BATCH = 16
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def sync_folder(folder: Path) -> None:
    """Make the entries of ``folder`` durable (fsync of the folder)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StagingNames:
    """Empty ``.part`` files (mode 0600, open) in ``folder`` whose names are durable."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._spare: list[tuple[Path, int]] = []  # created, durable, not handed out

    def take(self) -> tuple[Path, int]:
        """The next file and its descriptor (the caller owns both)."""
        with self._lock:
            if not self._spare:
                self._spare = self._create()
            return self._spare.pop()

    def prepare(self) -> None:
        """Create the next batch now if none is left (e.g. while the peer works)."""
        with self._lock:
            if not self._spare:
                self._spare = self._create()

    def release(self) -> None:
        """Close and remove the files never handed out."""
        with self._lock:
            spare, self._spare = self._spare, []
        _release(spare)

    def _create(self) -> list[tuple[Path, int]]:
        made: list[tuple[Path, int]] = []
        try:
            for _ in range(BATCH):
                part = self.folder / f"{next(self._counter):08d}.part"
                try:
                    made.append((part, os.open(part, _CREATE, 0o600)))
                except FileNotFoundError:  # the folder is made with the first file
                    self.folder.mkdir(parents=True, exist_ok=True)
                    made.append((part, os.open(part, _CREATE, 0o600)))
            sync_folder(self.folder)
        except BaseException:
            _release(made)
            raise
        made.reverse()  # handed out in name order
        return made


def _release(names: list[tuple[Path, int]]) -> None:
    for part, fd in names:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(OSError):
            part.unlink()
