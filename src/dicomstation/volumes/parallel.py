"""When and how to use forked worker processes (pydicom parsing and most decoders hold the GIL)."""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # multiprocessing (~0.02 s with socket, tempfile...) only when forking
    from multiprocessing.pool import Pool

__all__ = ["can_fork", "fork_pool", "worker_count"]


def worker_count() -> int:
    """Workers to use: the CPUs, at most 4."""
    return min(4, os.cpu_count() or 1)


def can_fork() -> bool:
    """True when forking is safe and useful: idle CPUs and no other thread running.

    Forking a process that runs other threads (a web server, a pool) can copy
    a lock held by one of them; then the threaded code paths are used instead.
    Workers only pay off on idle cores: with the machine already busy (1-minute
    load average above CPUs - 1) their start-up and pickling cost more than
    they save.
    """
    if not (
        sys.platform == "linux"  # macOS system libraries are not fork-safe
        and worker_count() > 1
        and threading.active_count() == 1
        and os.getloadavg()[0] <= (os.cpu_count() or 1) - 1
    ):
        return False
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()


def fork_pool(initializer: Any = None, initargs: tuple[Any, ...] = ()) -> Pool:
    """A pool of forked workers (``initargs`` are inherited, not pickled)."""
    import multiprocessing

    return multiprocessing.get_context("fork").Pool(worker_count(), initializer, initargs)
