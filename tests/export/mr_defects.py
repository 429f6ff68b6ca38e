"""A synthetic oblique MR series carrying the header defects real scanners write (made in code).

- ImageOrientationPatient strings rounded differently from slice to slice (``0.00387589``
  on one slice, ``0.0038759`` on the next): equal within 1e-4, not as strings;
- InversionTime and TriggerTime present although their Type 2C condition in the MR
  Image module is not met (no inversion recovery in ScanningSequence, no cardiac gating);
- LongitudinalTemporalInformationModified written with VR SH (the standard says CS);
- private tags nested inside a standard sequence item.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import MRImageStorage

from tests.export.synthetic import ct_series, phantom, write_series

__all__ = ["defective_mr_series", "rounded_orientation"]


def rounded_orientation(k: int) -> list[str]:
    """Oblique direction cosines as decimal strings, rounded to 8 or 9 digits by slice."""
    a = np.arcsin(0.00387589)  # a small rotation: 0.00387589 in the row cosines
    row = np.array([np.cos(a), np.sin(a), 0.0])
    col = np.array([-np.sin(a), np.cos(a), 0.0])
    digits = 8 if k % 2 else 9
    return [f"{v:.{digits}g}" for v in (*row, *col)]


def defective_mr_series(folder: Path, slices: int = 6) -> list[Path]:
    """Write the defective MR series under ``folder``; return its files."""
    datasets = ct_series(phantom(slices=slices, rows=32, columns=32))
    for k, ds in enumerate(datasets):
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        ds.Modality, ds.SeriesDescription = "MR", "Oblique T1"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        del ds.KVP, ds.RescaleType, ds.WindowCenter, ds.WindowWidth
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = (np.frombuffer(ds.PixelData, np.int16) + 1024).astype(np.int16).tobytes()
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "SE", "NONE", ""
        ds.MRAcquisitionType, ds.EchoTime, ds.RepetitionTime, ds.EchoTrainLength = "2D", 10, 500, 1
        ds.InversionTime, ds.TriggerTime = 0, 0  # condition not met: must not be copied
        ds.add_new(0x00280303, "SH", "UNMODIFIED")  # LongitudinalTemporalInformationModified
        ds.ImageOrientationPatient = rounded_orientation(k)
        ds.add_new(0x00291010, "OB", b"\x00\x01")  # top-level private (vendor header)
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "T-D3000", "SRT", "Chest"
        item.add_new(0x00090010, "LO", "ACME PRIVATE")  # private creator inside a sequence
        item.add_new(0x00091001, "LO", "nested private value")
        ds.AnatomicRegionSequence = DicomSequence([item])
    return write_series(datasets, folder)
