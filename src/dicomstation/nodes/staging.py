"""Write received parts to staging files on a background thread.

File creation and writes (kernel copies into the page cache) cost about as much
CPU as receiving the bytes; doing them on their own thread lets them overlap
with the network reads (both release the GIL). The queue is bounded, so memory
stays at ``depth`` groups of about 1 MiB whatever the transfer size, and a slow
disk slows the download instead of filling memory. Pieces may be memoryviews of
the received chunks (no copy); they are written with ``writev`` on a raw file
descriptor.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

__all__ = ["Gathered", "InlineBatch", "StagedFile", "StagingWriter", "write_file"]


_CREATE = (
    os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
)


#: bytes a :class:`StagedFile` gathers before handing them to the writer thread
_BATCH = 1 << 20

Piece = bytes | memoryview
T = TypeVar("T")


def _write_all(fd: int, pieces: list[Piece]) -> None:
    """Write every piece, in order (one ``writev`` call when the OS has it)."""
    views = [memoryview(piece).cast("B") for piece in pieces]
    writev = getattr(os, "writev", None)
    while views:
        if writev is None or len(views) == 1:
            views[0] = views[0][os.write(fd, views[0]) :]
        else:
            done = writev(fd, views[:1024])
            while done and done >= len(views[0]):
                done -= len(views[0])
                views.pop(0)
            if done:
                views[0] = views[0][done:]
        if views and not views[0]:
            views.pop(0)


def write_file(path: Path, pieces: list[Piece]) -> None:
    """Create ``path`` (it must not exist) holding ``pieces``, on the calling thread.

    For a small file that is complete in memory: three system calls, no thread
    hand-off. A file left by a failed write is removed.
    """
    fd = os.open(path, _CREATE, 0o666)
    try:
        _write_all(fd, pieces)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)


class _Op(enum.Enum):
    DATA = 1
    CLOSE = 2
    ABORT = 3
    STOP = 4


class StagedFile:
    """One file being written by a :class:`StagingWriter` (use from one thread)."""

    def __init__(self, writer: StagingWriter, path: Path, size: int | None = None) -> None:
        self.path = path
        self._writer = writer
        self.handle: int | None = None  # an OS file descriptor (no buffering layer)
        self.done = threading.Event()  # set once closed (or discarded) by the writer
        self._pending: list[Piece] = []  # pieces not queued yet (at most ~_BATCH bytes)
        self._pending_bytes = 0
        self._size = size  # the announced size, if any
        self._started = False

    def write(self, chunk: Piece) -> None:
        """Queue a chunk (blocks while the queue is full).

        The first piece is handed to the writer thread at once (the ``.part`` file
        appears while the rest arrives), the next ones in groups of about 1 MiB or
        with :meth:`close`: one thread hand-off per group instead of one per piece.
        A first piece that is the whole file (its announced ``size``) waits for
        :meth:`close`: one hand-off (create, write, close) per small instance, whose
        thread hand-offs are most of the receiving thread's cost.
        """
        self._writer.check()  # a write error shows at once, queued or not
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        if self._pending_bytes >= _BATCH or (
            not self._started and self._pending_bytes != self._size
        ):
            self._started = True
            self._flush()

    def _flush(self) -> None:
        pieces, self._pending, self._pending_bytes = self._pending, [], 0
        self._writer._put(_Op.DATA, self, pieces)

    def close(self) -> None:
        """Queue the end of the file; ``on_complete(path)`` runs once it is written."""
        pieces, self._pending, self._pending_bytes = self._pending, [], 0
        self._writer._put(_Op.CLOSE, self, pieces)

    def abort(self) -> None:
        """Queue the removal of the (incomplete) file."""
        self._pending, self._pending_bytes = [], 0
        self._writer._put(_Op.ABORT, self, [], check=False)

    def wait(self) -> None:
        """Wait until the writer has handled this file (and all queued before it).

        Raises the writer's error (e.g. disk full) if there was one.
        """
        if self._pending:
            self._flush()
        self.done.wait()
        self._writer.check()


class StagingWriter:
    """A writer thread for staged files in ``folder``.

    Parameters
    ----------
    folder : Path
        Where files are created (``*.part``).
    on_complete : callable
        Called on the writer thread with the path of each file closed complete.
    depth : int
        Chunks the queue holds at most.
    """

    def __init__(self, folder: Path, on_complete: Callable[[Path], None], depth: int = 16) -> None:
        self.folder = folder
        self._on_complete = on_complete
        self._queue: queue.Queue[tuple[_Op, StagedFile | None, list[Piece]]] = queue.Queue(depth)
        # one random prefix per writer and a counter: unique names without a uuid4
        # (an urandom read) per file
        self._prefix = uuid.uuid4().hex[:12]
        self._names = itertools.count()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="staging-writer", daemon=True)
        self._thread.start()

    def new_file(self, size: int | None = None) -> StagedFile:
        """A new staged file (created on the writer thread with its first chunk).

        ``size``, when the sender announced it, lets a file that arrives in one
        piece be created, written and closed in a single hand-off.
        """
        return StagedFile(self, self.new_path(), size)

    def new_path(self) -> Path:
        """A new unique ``.part`` path in the folder (for :func:`write_file`)."""
        return self.folder / f"{self._prefix}-{next(self._names)}.part"

    def check(self) -> None:
        """Raise the writer thread's error, if any."""
        if self._error is not None:
            raise self._error

    def _put(
        self, op: _Op, item: StagedFile | None, data: list[Piece], *, check: bool = True
    ) -> None:
        if check:
            self.check()
        self._queue.put((op, item, data))

    def _run(self) -> None:
        while True:
            op, item, data = self._queue.get()
            try:
                if op is _Op.STOP:
                    return
                assert item is not None
                if self._error is not None or op is _Op.ABORT:
                    self._discard(item)
                    if self._error is not None and op is _Op.DATA:
                        item.done.set()  # a producer waiting on it must not hang
                else:
                    self._apply(op, item, data)
            except BaseException as exc:  # kept; raised to the producer on its next put
                self._error = exc
                if item is not None:
                    self._discard(item)
                    item.done.set()  # nobody may wait forever on a failed file
            finally:
                if item is not None and op is not _Op.DATA:
                    item.done.set()
                self._queue.task_done()

    def _apply(self, op: _Op, item: StagedFile, data: list[Piece]) -> None:
        # os.open/os.write rather than open(): no buffer copy, and 3 fewer system
        # calls per file (fstat, ioctl, lseek) than a BufferedWriter's setup.
        if item.handle is None:
            item.handle = os.open(item.path, _CREATE, 0o666)
        if data:
            _write_all(item.handle, data)
        if op is _Op.DATA:
            return
        os.close(item.handle)
        item.handle = None
        self._on_complete(item.path)

    @staticmethod
    def _discard(item: StagedFile) -> None:
        if item.handle is not None:
            with contextlib.suppress(OSError):
                os.close(item.handle)
            item.handle = None
        with contextlib.suppress(OSError):
            os.unlink(item.path)

    def drain(self) -> None:
        """Wait until everything queued is written; raise a write error if one happened."""
        self._queue.join()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Finish the queue and stop the thread (errors are left to :meth:`drain`)."""
        if self._thread.is_alive():
            self._queue.put((_Op.STOP, None, []))
            self._thread.join()


class InlineBatch(Generic[T]):
    """Instances the receiving thread holds whole, handed to ``commit`` before each network read.

    Many small instances made the receiving, writing and indexing threads hand
    each one over twice, and the indexing thread, busy in Python, kept the GIL
    from the two others at every hand-off and system call (up to the 5 ms switch
    interval each time). A part that arrives whole in one read is instead kept
    here (with its scan, by the receiving thread), and the batch is written and
    indexed (``commit``) whenever the receiver is about to wait for more data
    (:meth:`before_reads`) and at the end, so everything that arrived whole is
    indexed before the transfer waits or stops, one transaction per read. While it
    is indexed, the kernel's socket buffer keeps receiving.
    """

    def __init__(self, commit: Callable[[list[T]], None]) -> None:
        self._commit = commit
        self._items: list[T] = []

    def add(self, item: T) -> None:
        """A complete instance, to be committed with the batch."""
        self._items.append(item)

    def flush(self) -> None:
        """Commit the instances gathered so far."""
        if self._items:
            items, self._items = self._items, []
            self._commit(items)

    def before_reads(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Yield ``chunks``, committing the batch before each next chunk is read."""
        for chunk in chunks:
            yield chunk
            self.flush()


class Gathered(Generic[T]):
    """Items gathered by one thread for another, which is woken once per batch, not per item.

    The writer thread :meth:`add` s each complete file; only the first one since the
    last :meth:`take` needs to wake the indexer (``add`` returns True), whose linger
    then lets more gather without a thread wake-up (and a GIL hand-off) per file.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[T] = []

    def add(self, item: T) -> bool:
        """Add ``item``; True if it is the first since the last :meth:`take`."""
        with self._lock:
            self._items.append(item)
            return len(self._items) == 1

    def take(self) -> list[T]:
        """Every item added since the last call."""
        with self._lock:
            items, self._items = self._items, []
        return items
