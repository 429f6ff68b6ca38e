"""De-identify files: read, de-identify, write atomically to a folder or the local database.

Output files are named by their new UIDs (``<study>/<series>/<sop>.dcm``), are written to a
temporary name and renamed when complete, so nothing half-written is ever visible. The bytes
depend only on the input and the key: two processes with the same key write identical files.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError as PydicomInvalidDicomError

from dicomstation.database import Database
from dicomstation.database.importer import expand_paths
from dicomstation.deid.config import Change, DeidConfig
from dicomstation.deid.engine import DeidResult, deidentify
from dicomstation.deid.ledger import Ledger
from dicomstation.errors import DeidentificationError, DicomStationError, InvalidDicomError

__all__ = ["DeidReport", "deidentify_file", "encode", "run", "write_into"]


@dataclass(frozen=True)
class DeidReport:
    """What a run did (or, dry, would do).

    Parameters
    ----------
    written : tuple of (str, str)
        (input file, output path or new SOP Instance UID) per instance.
    refused : dict
        Input file -> one-line reason (burned-in text, not DICOM...).
    actions : Counter
        (attribute path without item numbers, action) -> number of occurrences.
    examples : dict
        (attribute path, action) -> (before, after) of the first instance seen.
    """

    written: tuple[tuple[str, str], ...] = ()
    refused: dict[str, str] = field(default_factory=dict)
    actions: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)


def _read(path: str) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(path)
    except PydicomInvalidDicomError:
        return _read_bare(path)
    except (EOFError, OSError, ValueError) as exc:
        raise InvalidDicomError(path, f"cannot be read as DICOM: {exc}") from None


def _read_bare(path: str) -> pydicom.Dataset:
    """A data set stored without preamble and File Meta (old archives, CDs), as the database
    takes it: read forced, accepted only with its SOP Class and Instance UIDs, given the meta
    of its own encoding."""
    from pydicom.dataset import FileMetaDataset

    from dicomstation.database.headers import stored_syntax

    try:
        ds = pydicom.dcmread(path, force=True)
        identified = bool(ds.get("SOPClassUID")) and bool(ds.get("SOPInstanceUID"))
    except (PydicomInvalidDicomError, EOFError, OSError, ValueError, KeyError) as exc:
        raise InvalidDicomError(path, f"cannot be read as DICOM: {exc}") from None
    if not identified:
        raise InvalidDicomError(path, "not DICOM (no File Meta header, no SOP Instance UID)")
    syntax = stored_syntax(ds)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    return ds


def deidentify_file(path: str | os.PathLike[str], config: DeidConfig) -> DeidResult:
    """Read and de-identify one file.

    Raises
    ------
    InvalidDicomError
        If the file is not DICOM.
    DeidentificationError
        If it cannot be de-identified safely.
    """
    source = os.fspath(path)
    return deidentify(_read(source), config, source=source)


def encode(result: DeidResult) -> bytes:
    """The de-identified instance as DICOM Part 10 bytes."""
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, result.dataset, enforce_file_format=True)
    return buffer.getvalue()


def write_into(folder: Path, result: DeidResult) -> Path:
    """Write ``result`` under ``folder`` atomically; return the final path."""
    ds = result.dataset
    target = folder / str(ds.StudyInstanceUID) / str(ds.SeriesInstanceUID)
    target.mkdir(parents=True, exist_ok=True)
    final = target / f"{ds.SOPInstanceUID}.dcm"
    fd, tmp = tempfile.mkstemp(dir=target, prefix=".deid-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(encode(result))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return final


def _generic(path: str) -> str:
    parts = []
    for piece in path.split("."):
        parts.append(piece.split("[", 1)[0])
    return ".".join(parts)


def _tally(report: DeidReport, changes: Iterable[Change]) -> None:
    for change in changes:
        private = change.keyword.startswith("(") and (change.tag >> 16) % 2
        path = _generic(change.path)
        if private:  # one row for all private attributes at a level
            path = path.rsplit(".", 1)[0] + ".(private)" if "." in path else "(private)"
        key = (path, change.action)
        report.actions[key] += 1
        report.examples.setdefault(key, (change.before, change.after))


def run(
    inputs: Iterable[str | os.PathLike[str]],
    config: DeidConfig,
    *,
    to_folder: Path | None = None,
    to_database: Database | None = None,
    ledger: Ledger | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DeidReport:
    """De-identify every file under ``inputs``; with no destination it is a dry run.

    Parameters
    ----------
    inputs : iterable of path-like
        Files and folders (recursively).
    config : DeidConfig
    to_folder : Path, optional
        Write ``<study>/<series>/<sop>.dcm`` here.
    to_database : Database, optional
        Import the outputs into this database (moved from its staging folder).
    ledger : Ledger, optional
        Record original -> pseudonym pairs (only when something is written).
    progress : callable, optional
        Called with (files done, files total).

    Returns
    -------
    DeidReport
        Files that cannot be de-identified are refused with a reason; the others go on.
    """
    files = [f for f in expand_paths(inputs) if not Path(f).name.startswith(".")]
    report = DeidReport()
    written: list[tuple[str, str]] = []
    staging = to_database.staging_dir("deid") if to_database is not None else None
    for done, source in enumerate(files, 1):
        try:
            result = deidentify_file(source, config)
        except (DeidentificationError, InvalidDicomError) as exc:
            report.refused[source] = str(exc)
            continue
        _tally(report, result.changes)
        folder = to_folder or staging
        if folder is not None:
            try:
                out = write_into(folder, result)
            except OSError as exc:  # nothing half-written stays: write_into removes its part file
                raise DicomStationError(f"cannot write under {folder}: {exc.strerror}") from None
            if ledger is not None:
                ledger.record(result.mappings)
            written.append((source, str(out)))
        else:
            written.append((source, str(result.dataset.SOPInstanceUID)))
        if progress is not None:
            progress(done, len(files))
    if to_database is not None and written:
        imported = to_database.add_files([out for _, out in written], move=True)
        for path, reason in imported.failed.items():
            report.refused[path] = f"not imported: {reason}"
    return DeidReport(tuple(written), report.refused, report.actions, report.examples)


def check_destination(to_folder: Path | None, to_database: Database | None) -> None:
    """Refuse two destinations at once."""
    if to_folder is not None and to_database is not None:
        raise DicomStationError("give one destination: a folder or the database")
