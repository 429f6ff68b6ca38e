"""Reading stored instance files as the server serves them: any file ``db import`` accepts.

``db import`` accepts files without a File Meta header (no preamble, no ``DICM``),
such as pydicom's ``rtstruct.dcm``. Every read here is forced and completes the
file meta (transfer syntax from the data set's own encoding, SOP class and
instance), so such files are served as valid Part 10 files and never turn a
request into a 500.
"""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset

from dicomstation.database.headers import stored_syntax

__all__ = ["has_part10_prefix", "part10_bytes", "read_stored"]

_PREFIX_END = 132


def has_part10_prefix(path: Path) -> bool:
    """True when the file has the 128-byte preamble and ``DICM`` (a proper Part 10 file)."""
    with path.open("rb") as handle:
        head = handle.read(_PREFIX_END)
    return len(head) == _PREFIX_END and head[128:] == b"DICM"


def _complete_meta(ds: Dataset) -> None:
    meta = getattr(ds, "file_meta", None)
    if not isinstance(meta, FileMetaDataset):
        meta = FileMetaDataset(meta) if meta is not None else FileMetaDataset()
    meta.TransferSyntaxUID = stored_syntax(ds)
    if "MediaStorageSOPClassUID" not in meta and "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "MediaStorageSOPInstanceUID" not in meta and "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta = meta


def read_stored(path: Path | str, *, stop_before_pixels: bool = False) -> Dataset:
    """Read a stored instance file (forced), with its file meta completed.

    Parameters
    ----------
    path : Path or str
        The instance file in the database.
    stop_before_pixels : bool
        Stop reading at (7FE0,0010), as :func:`pydicom.dcmread` does.
    """
    ds = pydicom.dcmread(path, force=True, stop_before_pixels=stop_before_pixels)
    _complete_meta(ds)
    return ds


def part10_bytes(path: Path) -> tuple[bytes, str]:
    """The instance as a valid Part 10 file in its stored transfer syntax, and that syntax.

    Used for files stored without a File Meta header: the data set is written
    unchanged after a preamble, ``DICM`` and the completed file meta.
    """
    ds = read_stored(path)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)  # encoded as its (completed) file meta says
    return buffer.getvalue(), str(ds.file_meta.TransferSyntaxUID)
