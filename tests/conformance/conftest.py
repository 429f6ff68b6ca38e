"""Our DICOMweb server over a small real dataset, for the third-party client tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from dicomstation.database import Database
from dicomstation.server import RunningServer, ServerOptions, create_app, start_in_thread
from tests.conformance.data import QA_TS, SHARED

# the MR mosaic as explicit VR LE, big endian and JPEG 2000; a 10-frame enhanced MR
SMALL = (
    QA_TS / "1.dcm",
    QA_TS / "3.dcm",
    QA_TS / "9.dcm",
    SHARED / "pydicom_data_subset" / "emri_small.dcm",
)


@dataclass(frozen=True)
class Served:
    """The running server, its database and the files it was loaded with (by SOP UID)."""

    db: Database
    running: RunningServer
    files: dict[str, Path]

    @property
    def url(self) -> str:
        return f"{self.running.url}/dicom-web"


@pytest.fixture(scope="module")
def small_server() -> Iterator[Served]:
    """Our server (loopback, no credentials) over :data:`SMALL`."""
    if not all(p.is_file() for p in SMALL):
        pytest.skip("../shared/data is not available")
    with Database.temporary() as db:
        report = db.import_path(list(SMALL))
        assert len(report.succeeded) == len(SMALL), report.failed
        files = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in SMALL}
        running = start_in_thread(create_app(db, ServerOptions()))
        try:
            yield Served(db, running, files)
        finally:
            running.stop()
