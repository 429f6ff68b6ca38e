"""Zip archives among imported files: their members are imported as files of a folder are.

What a PACS's "download study", Orthanc's ``/studies/{id}/archive``, TCIA and many
web viewers hand out is a zip of DICOM files; Slicer and Orthanc import those as
they are. :func:`import_archive` reads the members one at a time (``zipfile``),
each into a staging file of the database whose name we make (a counter: nothing in
the archive names a path), in batches of :data:`BATCH_FILES` files or
:data:`BATCH_BYTES` bytes, which the database then takes over
(:meth:`Database.add_files`, moved into the store and indexed in one transaction).
So memory holds one read of 1 MiB and the staging area at most one batch;
a member larger than :data:`MAX_MEMBER_BYTES` once inflated (a zip bomb) is refused
when it passes the limit. Members are named ``ARCHIVE:MEMBER`` in the report; an
encrypted member, a zip inside the zip or a member that is not DICOM is reported
and the rest imported.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from dicomstation.database.private import FILE_MODE, database_error
from dicomstation.models import TransferReport

if TYPE_CHECKING:
    from dicomstation.database.database import Database
    from dicomstation.nodes.base import CancelToken

__all__ = ["BATCH_BYTES", "BATCH_FILES", "MAX_MEMBER_BYTES", "import_archive", "is_archive"]

#: a member inflating past this many bytes is refused (no DICOM instance is that large)
MAX_MEMBER_BYTES = 4 << 30
#: members staged before the database takes them over
BATCH_FILES = 256
BATCH_BYTES = 256 << 20
_READ = 1 << 20
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a first member, or an empty archive
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def is_archive(path: str) -> bool:
    """True for a ``.zip`` file that is a zip archive, not DICOM (a preamble may start with PK).

    Only files named ``*.zip`` are opened here: an import of many files opens each once.
    """
    if not path.lower().endswith(".zip"):
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return head[:4] in _ZIP_MAGIC and head[128:132] != b"DICM"


class _RefusedError(Exception):
    """A member that is not imported (the reason is the message)."""


class _StagingError(Exception):
    """Writing a staging file failed (``cause``): the import stops."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass
class _Batch:
    """Members staged so far: staged path -> the member's name in the report."""

    names: dict[str, str] = field(default_factory=dict)
    nbytes: int = 0


def import_archive(
    db: Database,
    archive: str,
    *,
    progress: Callable[..., None] | None = None,
    cancel: CancelToken | None = None,
) -> TransferReport:
    """Import the members of the zip ``archive`` into ``db`` (see the module's description)."""
    staging = db.staging_dir("zip")
    reports: list[TransferReport] = []
    refused: dict[str, str] = {}
    try:
        with zipfile.ZipFile(archive) as opened:
            for batch in _batches(opened, archive, staging, refused, cancel):
                reports.append(_add(db, batch, progress))
                for staged in batch.names:  # what the database did not take (not DICOM)
                    with contextlib.suppress(OSError):
                        os.unlink(staged)
    except _StagingError as exc:  # our side: the disk is full, the folder went away
        raise database_error(exc.cause, "cannot stage a zip member", db.root) from exc.cause
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as exc:
        refused[archive] = f"{archive}: not a readable zip archive ({exc})"
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # what the database did not take
    return _merged(reports, refused)


def _batches(
    opened: zipfile.ZipFile,
    archive: str,
    staging: Path,
    refused: dict[str, str],
    cancel: CancelToken | None,
) -> Iterator[_Batch]:
    batch, number = _Batch(), 0
    for info in opened.infolist():
        if info.is_dir():
            continue
        if cancel is not None and cancel.cancelled:
            break
        name, number = f"{archive}:{info.filename}", number + 1
        staged = staging / f"{number}.part"
        try:
            batch.nbytes += _extract(opened, info, staged)
            batch.names[os.fspath(staged)] = name
        except _RefusedError as exc:
            with contextlib.suppress(OSError):
                staged.unlink()
            refused[name] = f"{name}: {exc}"
        if len(batch.names) >= BATCH_FILES or batch.nbytes >= BATCH_BYTES:
            yield batch
            batch = _Batch()
    if batch.names:
        yield batch


def _extract(opened: zipfile.ZipFile, info: zipfile.ZipInfo, staged: Path) -> int:
    """Copy one member into ``staged`` (mode 0600), bounded; its size."""
    try:
        source = opened.open(info)
    except (RuntimeError, NotImplementedError, zipfile.BadZipFile) as exc:
        raise _RefusedError(f"cannot be read ({exc})") from None  # encrypted, unknown method
    with source:
        try:
            fd = os.open(staged, _CREATE, FILE_MODE)
        except OSError as exc:
            raise _StagingError(exc) from None
        size = 0
        try:
            while chunk := _read(source):
                if size == 0 and chunk[:4] in _ZIP_MAGIC and chunk[128:132] != b"DICM":
                    raise _RefusedError("a zip archive inside the archive is not opened")
                size += len(chunk)
                if size > MAX_MEMBER_BYTES:
                    raise _RefusedError(f"inflates past {MAX_MEMBER_BYTES} bytes")
                _write(fd, chunk)
        finally:
            os.close(fd)
    return size


def _write(fd: int, chunk: bytes) -> None:
    view = memoryview(chunk)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise _StagingError(exc) from None


def _read(source: IO[bytes]) -> bytes:
    try:
        return source.read(_READ)
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:  # bad CRC, truncated
        raise _RefusedError(f"is damaged ({exc})") from None


def _add(db: Database, batch: _Batch, progress: Callable[..., None] | None) -> TransferReport:
    report = db.add_files(list(batch.names), move=True, progress=progress)
    names = batch.names

    def named(staged: str) -> str:
        return names.get(staged, staged)

    return TransferReport(
        "import",
        tuple(named(s) for s in report.succeeded),
        tuple(named(s) for s in report.skipped),
        {named(s): reason.replace(s, named(s)) for s, reason in report.failed.items()},
        {named(s): reason.replace(s, named(s)) for s, reason in report.warnings.items()},
        bytes_transferred=report.bytes_transferred,
        seconds=report.seconds,
    )


def _merged(reports: list[TransferReport], refused: dict[str, str]) -> TransferReport:
    """The batches' reports as one (a single pass: an archive may have many batches)."""
    failed = {name: reason for r in reports for name, reason in r.failed.items()} | refused
    return TransferReport(
        "import",
        tuple(name for r in reports for name in r.succeeded),
        tuple(name for r in reports for name in r.skipped),
        failed,
        {name: note for r in reports for name, note in r.warnings.items()},
        sum(r.bytes_transferred for r in reports),
        sum(r.seconds for r in reports),
    )
