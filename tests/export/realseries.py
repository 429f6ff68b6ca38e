"""Every image series of ../shared/data, found by reading headers (for tests that run them all).

A series is the files of one folder that share a SeriesInstanceUID. Gzipped files,
non-DICOM files and objects that are not images (SEG, SR, RT, ECG...) are left out;
whether a series *loads* is for the test to find out.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

__all__ = ["RealSeries", "real_series"]

# SOP classes that hold no image to export from (or are our own outputs' kinds).
_NOT_SOURCES = {
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation
    "1.2.840.10008.5.1.4.1.1.30",  # Parametric Map
    "1.2.840.10008.5.1.4.1.1.481.2",  # RT Dose (a grid of doses, not an image series here)
}


_TAGS = ["SOPClassUID", "SeriesInstanceUID", "Rows"]


@dataclass(frozen=True)
class RealSeries:
    """One image series of the shared data: a readable name and its files."""

    name: str
    files: tuple[Path, ...]


def _image_header(path: Path) -> pydicom.Dataset | None:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError):
        return None
    sop_class = str(ds.get("SOPClassUID", ""))
    if (
        "Rows" not in ds
        or sop_class in _NOT_SOURCES
        or sop_class.startswith("1.2.840.10008.5.1.4.1.1.88")
    ):
        return None
    return ds


def real_series(root: Path) -> list[RealSeries]:
    """The image series under ``root``, sorted by name."""
    groups: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix in {".gz", ".zip", ".nii", ".json", ".nrrd", ".txt", ".md", ".png"}:
            continue
        ds = _image_header(path)
        if ds is not None:
            groups[(path.parent, str(ds.get("SeriesInstanceUID", "")))].append(path)
    out = []
    for (folder, uid), files in groups.items():
        name = f"{folder.relative_to(root)}:{uid[-12:]}"
        out.append(RealSeries(name, tuple(files)))
    return sorted(out, key=lambda s: s.name)
