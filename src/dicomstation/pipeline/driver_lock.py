"""One driver per job at a time, across processes: an advisory lock held for the run.

A second ``dicomstation run`` of a job that is running (a cron run that outlasts its
interval, the web UI resuming a job a terminal runs) would run every item again and
put the first driver's running items back to pending. The driver therefore holds an
exclusive ``flock`` on a small file beside the ledger for as long as it runs; the
kernel drops it when the process ends, however it ends (SIGKILL included), so a dead
driver never blocks the next run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from dicomstation.errors import DatabaseError, JobRunningError

__all__ = ["driving"]


@contextlib.contextmanager
def driving(ledger_path: Path, job_id: str) -> Iterator[None]:
    """Hold job ``job_id``'s driver lock for the block (:class:`JobRunningError` if taken)."""
    folder = Path(ledger_path).with_name(Path(ledger_path).name + ".locks")
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(folder / f"{job_id}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise DatabaseError(f"cannot lock job {job_id} in {folder}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobRunningError(
                f"job {job_id} is already being run by another process on this database; "
                f"wait for it, or stop it with 'dicomstation jobs cancel {job_id}'"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock
