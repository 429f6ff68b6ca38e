"""Synthetic CT series made in code (pydicom + highdicom UIDs), for tests and benchmarks.

The phantom is air (-1000 HU) around a water cylinder (0 HU) holding spheres
of known HU, so segmentations and statistics have exact expected values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

# (centre slice, row, column as fractions of the shape, radius in voxels, HU)
SPHERES = (
    (0.5, 0.35, 0.35, 0.12, 300.0),
    (0.5, 0.65, 0.65, 0.10, 150.0),
    (0.3, 0.35, 0.65, 0.08, 60.0),
    (0.7, 0.65, 0.35, 0.08, 900.0),
)


@dataclass(frozen=True)
class Phantom:
    """The HU array (slices, rows, columns) and its geometry."""

    hu: np.ndarray
    pixel_spacing: float
    slice_spacing: float


def phantom(slices: int = 20, rows: int = 64, columns: int = 64, spheres: int = 2) -> Phantom:
    """Return a phantom with ``spheres`` spheres (at most 4) in a water cylinder."""
    z, y, x = np.meshgrid(
        np.arange(slices), np.arange(rows), np.arange(columns), indexing="ij", sparse=True
    )
    hu = np.full((slices, rows, columns), -1000.0)
    cylinder = (y - rows / 2) ** 2 + (x - columns / 2) ** 2 <= (0.45 * min(rows, columns)) ** 2
    hu[np.broadcast_to(cylinder, hu.shape)] = 0.0
    for fz, fy, fx, fr, value in SPHERES[:spheres]:
        radius = fr * min(rows, columns)
        inside = (z - fz * slices) ** 2 * 4 + (y - fy * rows) ** 2 + (
            x - fx * columns
        ) ** 2 <= radius**2
        hu[inside] = value
    return Phantom(hu=hu, pixel_spacing=0.75, slice_spacing=2.0)


def ct_series(
    ph: Phantom | None = None, *, study_uid: str | None = None, reverse: bool = False
) -> list[Dataset]:
    """Make one single-frame CT dataset per slice of ``ph`` (stored int16, intercept -1024)."""
    ph = ph or phantom()
    study_uid = study_uid or generate_uid()
    series_uid, for_uid = generate_uid(), generate_uid()
    out = []
    for k, plane in enumerate(ph.hu):
        ds = _ct_slice(plane, k, ph, study_uid, series_uid, for_uid)
        out.append(ds)
    return out[::-1] if reverse else out


def _ct_slice(
    plane: np.ndarray, k: int, ph: Phantom, study_uid: str, series_uid: str, for_uid: str
) -> Dataset:
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = "20240102"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = "101500"
    ds.AccessionNumber, ds.Modality, ds.Manufacturer = "ACC123", "CT", "Phantom Scanner Inc"
    ds.ReferringPhysicianName, ds.StationName = "REF^DOCTOR", "CT01"
    ds.StudyDescription, ds.SeriesDescription = "Phantom study", "Phantom CT"
    ds.PatientName, ds.PatientID = "PHANTOM^ALICE", "PH0001"
    ds.PatientBirthDate, ds.PatientSex = "19700101", "F"
    ds.BodyPartExamined, ds.SliceThickness, ds.KVP = "CHEST", ph.slice_spacing, 120
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.StudyID, ds.SeriesNumber, ds.AcquisitionNumber, ds.InstanceNumber = "1", 3, 1, k + 1
    ds.ImagePositionPatient = [-24.0, -24.0, float(k) * ph.slice_spacing]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = for_uid, ""
    ds.SliceLocation = float(k) * ph.slice_spacing
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = plane.shape
    ds.PixelSpacing = [ph.pixel_spacing, ph.pixel_spacing]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PixelData = (plane + 1024).astype(np.int16).tobytes()
    return ds


def write_series(datasets: list[Dataset], folder: Path) -> list[Path]:
    """Save datasets as DICOM files (with file meta) under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def volume_of(datasets: list[Dataset]) -> hd.Volume:
    """The highdicom volume of a series (HU, float)."""
    return hd.get_volume_from_series(datasets)
