"""Small synthetic instances for the profile tests (every action code, nesting, options)."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from dicomstation.config import Secret
from dicomstation.deid import DeidConfig, Option

KEY = Secret("synthetic-project-key-0123456789")
SOP = "1.2.826.0.1.9999.1.1.1"
STUDY = "1.2.826.0.1.9999.1"
SERIES = "1.2.826.0.1.9999.1.1"
FRAME = "1.2.826.0.1.9999.2"
OTHER_SOP = "1.2.826.0.1.9999.1.1.2"


def config(*options: Option, **kwargs: object) -> DeidConfig:
    """A config with ``options`` enabled."""
    return DeidConfig(key=KEY, options=frozenset(options), **kwargs)  # type: ignore[arg-type]


def ref(uid: str) -> Dataset:
    """A reference item to a CT instance."""
    item = Dataset()
    item.ReferencedSOPClassUID = CTImageStorage
    item.ReferencedSOPInstanceUID = uid
    return item


def ct_instance() -> Dataset:
    """A CT instance with identifying attributes of every kind the table names."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = "HOSPITAL_PACS"
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = SOP
    ds.StudyInstanceUID = STUDY
    ds.SeriesInstanceUID = SERIES
    ds.FrameOfReferenceUID = FRAME
    ds.Modality = "CT"
    ds.Manufacturer = "ACME"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN12345"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.PatientAge = "053Y"
    ds.StudyDate = "20200315"
    ds.StudyTime = "101010"
    ds.SeriesDate = "20200315"
    ds.ContentDate = "20200316"
    ds.AcquisitionDateTime = "20200315101010.5"
    ds.AccessionNumber = "ACC777"
    ds.StudyID = "STUDY9"
    ds.InstitutionName = "General Hospital"
    ds.StationName = "CTROOM01"
    ds.DeviceSerialNumber = "SN99999"
    ds.StudyDescription = "CT chest for Jane Doe"
    ds.SeriesDescription = "axial"
    ds.ReferringPhysicianName = "House^Gregory"
    ds.ImageComments = "scanned by Gregory House"
    ds.BodyPartExamined = "CHEST"
    ds.ReferencedImageSequence = Sequence([ref(OTHER_SOP)])
    series = Dataset()
    series.SeriesInstanceUID = SERIES
    series.ReferencedInstanceSequence = Sequence([ref(OTHER_SOP)])
    ds.ReferencedSeriesSequence = Sequence([series])  # not in Table E.1-1: nested rules apply
    request = Dataset()
    request.RequestedProcedureID = "RP1"
    ds.RequestAttributesSequence = Sequence([request])
    block = ds.private_block(0x0011, "ACME SECRET", create=True)
    block.add_new(0x01, "LO", "Jane Doe private copy")
    ds.add_new(0x60000010, "US", 8)
    ds.add_new(0x60000011, "US", 8)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60003000, "OW", b"\x00" * 8)
    return ds


def write_instance(path: Path, ds: Dataset | None = None) -> Path:
    """Write a small complete CT file (with 2x2 pixels) to ``path``."""
    ds = ds if ds is not None else ct_instance()
    ds.Rows, ds.Columns = 2, 2
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = b"\x01\x00\x02\x00\x03\x00\x04\x00"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path
