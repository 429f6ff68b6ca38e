"""Synthetic DICOM made in code (for tests and benchmarks; never committed as files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def ct_dataset(
    index: int,
    *,
    study_uid: str,
    series_uid: str,
    size: int = 64,
    spacing: float = 1.0,
    patient_name: str = "SYNTH^CT",
    patient_id: str = "SYNTH1",
    study_date: str = "20240101",
    pixels: np.ndarray | None = None,
    frame_of_reference: str = "",
) -> Dataset:
    """One axial CT slice at z = index * spacing with a simple phantom."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_of_reference or study_uid
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyDate = study_date
    ds.StudyTime = "120000"
    ds.AccessionNumber = "ACC" + patient_id
    ds.StudyDescription = "Synthetic CT"
    ds.SeriesDescription = "Axial"
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.Modality = "CT"
    ds.Manufacturer = "dicomstation tests"
    ds.SeriesNumber = 1
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [-(size / 2), -(size / 2), index * spacing]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1.0, 1.0]
    ds.SliceThickness = spacing
    ds.Rows = size
    ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    if pixels is None:
        yy, xx = np.mgrid[0:size, 0:size]
        r = np.hypot(yy - size / 2, xx - size / 2)
        pixels = np.where(r < size / 3, 1064 + index, 24).astype(np.int16)
    ds.PixelData = pixels.astype(np.int16).tobytes()
    return ds


def write_ct_series(folder: Path, count: int, *, size: int = 64, **kwargs: object) -> list[Path]:
    """Write ``count`` slices of one new series into ``folder``; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = str(kwargs.pop("study_uid", generate_uid()))
    series_uid = str(kwargs.pop("series_uid", generate_uid()))
    paths = []
    for i in range(count):
        ds = ct_dataset(i, study_uid=study_uid, series_uid=series_uid, size=size, **kwargs)  # type: ignore[arg-type]
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
