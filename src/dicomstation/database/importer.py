"""Parallel parsing of files to import: scan headers, stage copies, report failures.

Workers (processes, so parsing uses every core) read each file once, scan its
header (:mod:`.scanner`) and, when copying, write the bytes to a staging file
under ``<root>/incoming``. The database process then moves staged files into
place and inserts the rows in batched transactions (:mod:`.database`).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
import uuid
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicomstation.database.private import copy_private, is_disk_full
from dicomstation.database.scanner import MediaDirectoryError, ScanResult, scan_bytes, scan_head
from dicomstation.errors import InvalidDicomError

if TYPE_CHECKING:
    from concurrent.futures import Executor

__all__ = ["Scanned", "expand_paths", "make_room", "scan_files"]

_PARALLEL_THRESHOLD = 64
_CHUNK = 32


@dataclass(frozen=True)
class Scanned:
    """One file's outcome: fields when parsed, ``error`` names what went wrong.

    ``fields`` with an ``error`` means the file was parsed but could not be staged
    (``disk_full`` says whether that was for want of space). ``note`` marks a file
    that is not an instance and not a failure either (a DICOMDIR): ``error`` says so.
    """

    source: str
    fields: dict[str, Any] | None
    transfer_syntax: str = ""
    size: int = 0
    staged: str | None = None
    error: str | None = None
    disk_full: bool = False
    note: bool = False


def expand_paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    """Return every regular file under the given files and folders, sorted per folder."""
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    found: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            for folder, dirs, files in os.walk(path):
                dirs.sort()
                found.extend(os.path.join(folder, name) for name in sorted(files))
        elif path.exists():
            found.append(str(path))
        else:
            found.append(str(path))  # reported as missing by the scan
    return found


def _scan_file(source: str, head: bytes | None) -> tuple[int, ScanResult | None]:
    """(size, fields); fields None for an empty file."""
    if head:  # the caller's copy of the first bytes: only the size is read from disk
        size = os.stat(source).st_size
        result = scan_head(head, size, source) if size else None
        if result is not None or not size:
            return size, result
    # mmap: the scanner touches only the header pages and skips pixel data by offset.
    with open(source, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return 0, None
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return size, scan_bytes(data, source)


def _scan_one(source: str, staging: str | None, head: bytes | None = None) -> Scanned:
    try:
        size, result = _scan_file(source, head)
        if result is None:
            return Scanned(source, None, error=f"{source}: empty file")
    except OSError as exc:
        return Scanned(source, None, error=f"{source}: cannot read ({exc.strerror or exc})")
    except MediaDirectoryError as exc:  # the files it lists are imported as files
        return Scanned(source, None, error=str(exc), note=True)
    except InvalidDicomError as exc:
        return Scanned(source, None, error=str(exc))
    staged = None
    if staging is not None:
        staged = os.path.join(staging, f"{uuid.uuid4().hex}.part")
        try:
            copy_private(source, staged)  # mode 0600, kernel-side copy (sendfile)
        except OSError as exc:
            _unlink(staged)
            # fields kept: an instance the database already has still counts as present
            full = is_disk_full(exc)
            error = f"{source}: {'disk full' if full else 'cannot stage copy'} ({exc})"
            return Scanned(source, result.fields, result.transfer_syntax, size, None, error, full)
    return Scanned(source, result.fields, result.transfer_syntax, size, staged)


def _scan_chunk(
    sources: list[str], staging: str | None, heads: Mapping[str, bytes] | None = None
) -> list[Scanned]:
    if heads:
        return [_scan_one(source, staging, heads.get(source)) for source in sources]
    return [_scan_one(source, staging) for source in sources]


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def drop_copies_except(staging: Path, batch: list[Scanned]) -> None:
    """Remove staged copies other than ``batch``'s (room for indexing it on a full disk)."""
    keep = {s.staged for s in batch if s.staged}
    for entry in os.scandir(staging):
        if entry.path not in keep:
            _unlink(entry.path)


def make_room(
    batch: list[Scanned], scans: Generator[list[Scanned], None, None], staging: Path
) -> list[Scanned]:
    """The disk filled up: stop scanning, free later batches' copies, stage ``batch`` again.

    Returns the batch with the copies that now fit; the import stops after it.
    """
    scans.close()  # cancels chunks not started, waits for running ones
    drop_copies_except(staging, batch)
    return [
        _scan_one(s.source, str(staging)) if s.disk_full and s.fields is not None else s
        for s in batch
    ]


def _executor(workers: int) -> Executor:
    # multiprocessing and concurrent.futures imported here: not for listing a database
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork is cheap (modules already imported) but unsafe once other threads exist
    # (a web server, a progress bar's refresh thread): then use forkserver.
    method = "fork" if threading.active_count() == 1 else "forkserver"
    if method == "fork":
        import pydicom  # noqa: F401  (imported once here, not in every forked worker)
    context = multiprocessing.get_context(method)
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


def scan_files(
    sources: list[str],
    staging: str | None,
    workers: int | None = None,
    heads: Mapping[str, bytes] | None = None,
) -> Generator[list[Scanned], None, None]:
    """Scan ``sources`` (in parallel when many), yielding results chunk by chunk, in order.

    Parameters
    ----------
    sources : list of str
        Files to scan.
    staging : str or None
        Folder for staged copies, or None to only scan (import by reference).
    workers : int, optional
        Process count; default: CPU count. Small imports run in this process.
    heads : mapping, optional
        The first bytes of some sources (path -> bytes), as their writer still has
        them: those are scanned from memory when the head holds every header
        element (see :func:`~.scanner.scan_head`), sizes still come from the disk.
    """
    chunks = [sources[i : i + _CHUNK] for i in range(0, len(sources), _CHUNK)]
    count = workers or os.cpu_count() or 1
    if count <= 1 or len(sources) < _PARALLEL_THRESHOLD:
        for chunk in chunks:
            yield _scan_chunk(chunk, staging, heads)
        return
    with _executor(count) as pool:
        try:
            yield from pool.map(_scan_chunk, chunks, [staging] * len(chunks))
        finally:  # stopped early (disk full, cancel): drop the chunks not started
            pool.shutdown(cancel_futures=True)
