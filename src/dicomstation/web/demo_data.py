"""Sample data for ``dicomstation demo``: pydicom's test files plus a synthetic head CT.

pydicom's and pydicom-data's files give real headers in many transfer syntaxes
but only tiny images, so a 40-slice "head" phantom (skull, brain, ventricles and
a bright lesion, in Hounsfield units) is written too: something worth viewing,
windowing and segmenting, made on the spot (no download, nothing copied).
"""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from dicomstation.database import Database
from dicomstation.models import TransferReport

__all__ = ["PHANTOM_DESCRIPTION", "phantom_hu", "sample_files", "seed_demo", "write_phantom"]

PHANTOM_DESCRIPTION = "Head phantom (synthetic)"
_PYDICOM_SAMPLES = (
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_jp2klossless.dcm",
    "SC_rgb_rle_2frame.dcm",
    "JPEG2000.dcm",
)


def phantom_hu(shape: tuple[int, int, int] = (40, 128, 128)) -> npt.NDArray[np.int16]:
    """A head-like volume in HU: air, skull (~1000), brain (~35), ventricles (~5), lesion (~75)."""
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    rng = np.random.default_rng(7)
    hu = np.full(shape, -1000.0)
    head = (x / 0.85) ** 2 + (y / 0.95) ** 2 + (z / 1.2) ** 2
    hu[head <= 1.0] = 1000.0
    hu[head <= 0.82] = 35.0
    ventricles = ((np.abs(x) - 0.15) / 0.1) ** 2 + (y / 0.35) ** 2 + (z / 0.5) ** 2
    hu[(ventricles <= 1.0) & (head <= 0.82)] = 5.0
    lesion = ((x - 0.4) ** 2 + (y + 0.3) ** 2 + (z - 0.1) ** 2) <= 0.12**2
    hu[lesion] = 75.0
    hu += rng.normal(0, 4, shape)
    return hu.round().astype(np.int16)


def _slice(common: Dataset, pixels: npt.NDArray[np.int16], index: int, spacing: float) -> Dataset:
    ds = Dataset()
    ds.update(common)
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [-64.0 * 1.5, -64.0 * 1.5, index * spacing]
    ds.SliceLocation = index * spacing
    ds.PixelData = (pixels + 1024).astype(np.uint16).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def _common(rows: int, columns: int, spacing: float) -> Dataset:
    today = datetime.date.today().strftime("%Y%m%d")
    ds = Dataset()
    for key, value in {
        "SOPClassUID": CTImageStorage,
        "Modality": "CT",
        "PatientName": "Phantom^Head",
        "PatientID": "DEMO-001",
        "PatientBirthDate": "19700101",
        "PatientSex": "O",
        "StudyInstanceUID": generate_uid(),
        "SeriesInstanceUID": generate_uid(),
        "FrameOfReferenceUID": generate_uid(),
        "StudyDate": today,
        "SeriesDate": today,
        "StudyTime": "120000",
        "StudyID": "1",
        "AccessionNumber": "DEMO0001",
        "StudyDescription": "Demo head CT",
        "SeriesDescription": PHANTOM_DESCRIPTION,
        "SeriesNumber": 1,
        "ReferringPhysicianName": "",
        "Manufacturer": "dicomstation",
        "BodyPartExamined": "HEAD",
        "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
        "PatientPosition": "HFS",
        "ImageOrientationPatient": [1, 0, 0, 0, 1, 0],
        "PixelSpacing": [1.5, 1.5],
        "SliceThickness": spacing,
        "Rows": rows,
        "Columns": columns,
        "SamplesPerPixel": 1,
        "PhotometricInterpretation": "MONOCHROME2",
        "BitsAllocated": 16,
        "BitsStored": 16,
        "HighBit": 15,
        "PixelRepresentation": 0,
        "RescaleIntercept": -1024,
        "RescaleSlope": 1,
        "RescaleType": "HU",
        "WindowCenter": 40,
        "WindowWidth": 80,
        "KVP": 120,
    }.items():
        setattr(ds, key, value)
    return ds


def write_phantom(
    folder: Path, shape: tuple[int, int, int] = (40, 128, 128), spacing: float = 3.0
) -> list[Path]:
    """Write the phantom as a CT series (one file per slice) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    volume = phantom_hu(shape)
    common = _common(shape[1], shape[2], spacing)
    paths = []
    for index in range(shape[0]):
        ds = _slice(common, volume[index], index, spacing)
        path = folder / f"phantom-{index:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def sample_files() -> list[Path]:
    """pydicom (and pydicom-data, when installed) sample files that make good demo studies."""
    from pydicom.data import get_testdata_file

    found = [get_testdata_file(name) for name in _PYDICOM_SAMPLES]
    base = Path(str(found[0])).parent / "dicomdirtests" / "77654033"
    series = sorted(p for p in base.glob("*/*") if p.is_file())
    return [Path(str(p)) for p in found if p] + series


def seed_demo(db: Database, scratch: Path) -> TransferReport:
    """Import the samples and a freshly written phantom into ``db``."""
    phantom = write_phantom(scratch / "phantom")
    return db.import_path([*sample_files(), *phantom], copy=True, workers=1)
