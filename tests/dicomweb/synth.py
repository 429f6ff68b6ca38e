"""Synthetic CT series made in code (for tests and the benchmark)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian


def make_series(
    folder: Path,
    *,
    study_uid: str,
    series_uid: str,
    count: int,
    size: int = 512,
    patient: str = "SYNTH^CT",
    study_date: str = "20240102",
) -> list[Path]:
    """Write ``count`` CT slices of ``size`` x ``size`` int16 pixels; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pixels = rng.integers(-1000, 2000, size=(size, size), dtype=np.int16)
    paths = []
    for index in range(count):
        sop = f"{series_uid}.{index + 1}"
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.PatientName, ds.PatientID, ds.PatientSex = patient, "SYNTH-1", "O"
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber = study_date, "101500", "ACC1"
        ds.StudyID, ds.StudyDescription, ds.SeriesDescription = "1", "Synthetic", "CT axial"
        ds.Modality, ds.InstanceNumber = "CT", index + 1
        ds.SeriesNumber = series_uid.rsplit(".", 1)[-1]
        ds.FrameOfReferenceUID = study_uid + ".9"
        ds.ImagePositionPatient = [0.0, 0.0, float(index)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 1.0
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = np.roll(pixels, index, axis=0).tobytes()
        path = folder / f"{index + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
