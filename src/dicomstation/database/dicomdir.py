"""DICOMDIR files among imported paths: the index of a CD's (or an archive's) files.

A DICOMDIR is DICOM but no instance. Importing a folder that holds one (every CD
does) imports the files of the folder and reports the DICOMDIR as a note, not a
failure (:class:`~.scanner.MediaDirectoryError`). A DICOMDIR named on its own (a
file called ``DICOMDIR``, as PS3.10 names it: other named files are not opened
twice) is replaced by the files it lists, as Slicer's (CTK's) indexer does: each record's
Referenced File ID, relative to the DICOMDIR's folder, whose components may not
leave that folder. A file ID that does not exist as written is also looked for in
lower case (a CD mounted with lower-case names); a listed file that is missing is
reported by the import like any missing file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from dicomstation.database.scanner import MEDIA_DIRECTORY, media_class
from dicomstation.errors import InvalidDicomError

__all__ = ["expand_dicomdirs", "listed_files"]

PathLike = str | os.PathLike[str]
_HEAD = 64 * 1024


def _is_dicomdir(path: PathLike) -> bool:
    """A file named DICOMDIR (PS3.10's name for it: other files are not read here) that is one."""
    if os.path.basename(os.fspath(path)).upper() != "DICOMDIR":
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD)
    except OSError:
        return False  # a folder, or missing: the import reports it
    return media_class(head) == MEDIA_DIRECTORY


def expand_dicomdirs(paths: PathLike | Iterable[PathLike]) -> list[PathLike]:
    """``paths`` with each DICOMDIR file named among them replaced by the files it lists."""
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    out: list[PathLike] = []
    for item in items:
        out.extend(listed_files(item) if _is_dicomdir(item) else [item])
    return out


def listed_files(dicomdir: PathLike) -> list[str]:
    """The files a DICOMDIR lists, in record order (InvalidDicomError if unreadable)."""
    import pydicom

    try:
        ds = pydicom.dcmread(dicomdir, stop_before_pixels=True)
        records = list(ds.get("DirectoryRecordSequence", []))
    except Exception as exc:  # pydicom raises many kinds for a damaged file
        raise InvalidDicomError(os.fspath(dicomdir), f"cannot read the DICOMDIR ({exc})") from None
    folder = Path(dicomdir).parent
    found: list[str] = []
    for record in records:
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        parts = [file_id] if isinstance(file_id, str) else [str(p) for p in file_id]
        if any(not p or p in (".", "..") or "/" in p or "\\" in p for p in parts):
            raise InvalidDicomError(
                os.fspath(dicomdir), f"Referenced File ID {'/'.join(parts)!r} leaves its folder"
            )
        path = folder.joinpath(*parts)
        if not path.exists() and folder.joinpath(*(p.lower() for p in parts)).exists():
            path = folder.joinpath(*(p.lower() for p in parts))
        found.append(os.fspath(path))
    return list(dict.fromkeys(found))
