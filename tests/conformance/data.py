"""The conformance tests' data: every set of ../shared/data in one temporary database.

Gzipped instances (``*.dcm.gz``) and zipped ones (``*.zip``, the US cine) are
unpacked into a temporary folder first, so every DICOM file of every set is served.
"""

from __future__ import annotations

import gzip
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dicomstation.database import Database

SHARED = Path("../shared/data")
QA_TS = SHARED / "dcm_qa_ts" / "In"
CT_3SLICE = SHARED / "dcmqi_ct_seg_sr" / "ct-3slice"
DCMQI_SEG = SHARED / "dcmqi_ct_seg_sr" / "seg" / "liver_seg.dcm"
US_CINE_ZIP = SHARED / "deid_data_us_ct" / "GREYSCALE_CINE.zip"


def unpack_archives(into: Path) -> list[Path]:
    """Unpack every ``*.dcm.gz`` and ``*.zip`` of the shared data into ``into``."""
    out: list[Path] = []
    for packed in sorted(SHARED.rglob("*.dcm.gz")):
        target = into / f"{packed.parent.name}_{packed.name[: -len('.gz')]}"
        with gzip.open(packed) as source, target.open("wb") as sink:
            shutil.copyfileobj(source, sink)
        out.append(target)
    for archive in sorted(SHARED.rglob("*.zip")):
        folder = into / archive.stem
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.infolist():  # no member may leave the folder
                if member.is_dir() or Path(member.filename).is_absolute():
                    continue
                if ".." in Path(member.filename).parts:
                    continue
                zipped.extract(member, folder)
        out.append(folder)
    return out


@contextmanager
def every_set(tmp: Path) -> Iterator[Database]:
    """A temporary database holding every set of ../shared/data (skips when absent)."""
    if not SHARED.is_dir():
        pytest.skip("../shared/data is not available")
    unpacked = tmp / "unpacked"
    unpacked.mkdir(parents=True, exist_ok=True)
    with Database.temporary() as db:
        sets = sorted(p for p in SHARED.iterdir() if p.is_dir())
        report = db.import_path([*sets, *unpack_archives(unpacked)])
        assert report.succeeded, "nothing of ../shared/data was imported"
        yield db
