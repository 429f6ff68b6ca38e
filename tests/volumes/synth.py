"""Synthetic classic series written with pydicom, for geometry and bad-input tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def oblique_orientation(deg_a: float = 20.0, deg_b: float = 10.0) -> tuple[float, ...]:
    """Row/column cosines rotated about two axes (an oblique plane)."""
    a, b = np.radians(deg_a), np.radians(deg_b)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    r = rx @ rz
    return (*r[:, 0], *r[:, 1])


def make_series(
    folder: Path,
    *,
    n: int = 8,
    rows: int = 12,
    cols: int = 10,
    orientation: Sequence[float] = AXIAL,
    origin: Sequence[float] = (-20.0, -30.0, 40.0),
    spacing: Sequence[float] | None = None,
    pixel_spacing: Sequence[float] = (0.8, 0.6),
    tilt_mm_per_slice: float = 0.0,
    intercept: float = -1024.0,
    slope: float = 1.0,
    extra: dict[str, Any] | None = None,
    series_uid: str | None = None,
    prefix: str = "",
) -> list[Path]:
    """Write ``n`` CT slices; ``spacing`` is the list of gaps (default 2.5 mm each).

    Slices are written in shuffled order (file names do not follow position).
    Pixel value at (k, i, j) is ``100*k + 10*i + j`` (stored), so any
    reordering shows.
    """
    folder.mkdir(parents=True, exist_ok=True)
    o = np.asarray(orientation, dtype=float)
    row, col = o[:3], o[3:]
    normal = np.cross(row, col)
    gaps = list(spacing) if spacing is not None else [2.5] * (n - 1)
    dist = np.concatenate([[0.0], np.cumsum(gaps)])
    series_uid = series_uid or generate_uid()
    study, frame = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"
    order = np.random.default_rng(1).permutation(len(dist))
    paths = []
    for k in order:
        pos = np.asarray(origin) + dist[k] * normal + k * tilt_mm_per_slice * col
        ds = _slice(rows, cols, k, row, col, pos, pixel_spacing)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series_uid, frame
        ds.InstanceNumber = int(k) + 1
        ds.RescaleIntercept, ds.RescaleSlope = intercept, slope
        for key, value in (extra or {}).items():
            setattr(ds, key, value)
        path = folder / f"{prefix}slice_{k:03d}_{generate_uid()[-6:]}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _slice(
    rows: int,
    cols: int,
    k: int,
    row: np.ndarray,
    col: np.ndarray,
    pos: np.ndarray,
    pixel_spacing: Sequence[float],
) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("slice", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName, ds.PatientID = "CT", "Synthetic^Volume", "SYN"
    ds.ImagePositionPatient = [float(v) for v in pos]
    ds.ImageOrientationPatient = [float(v) for v in (*row, *col)]
    ds.PixelSpacing = list(pixel_spacing)
    ds.SliceThickness = 2.5
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    i, j = np.mgrid[:rows, :cols]
    ds.PixelData = (100 * k + 10 * i + j).astype(np.int16).tobytes()
    return ds


def expected_array(n: int = 8, rows: int = 12, cols: int = 10) -> np.ndarray:
    """Stored values of :func:`make_series`, in (slice, row, column) order."""
    k, i, j = np.mgrid[:n, :rows, :cols]
    return (100 * k + 10 * i + j).astype(np.int32)
