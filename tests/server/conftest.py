"""Fixtures: a small real database served over DICOMweb by dicomstation on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dicomweb_client.api import DICOMwebClient

from dicomstation.database import Database
from dicomstation.server import RunningServer, ServerOptions, create_app, start_in_thread

SAMPLES = (
    "CT_small.dcm",  # explicit VR little endian, one CT slice
    "MR_small_jp2klossless.dcm",  # JPEG 2000 lossless
    "SC_rgb_rle_2frame.dcm",  # RLE, RGB, two frames
)


def sample_files(pydicom_files: Path) -> list[Path]:
    """A few pydicom test files of different syntaxes plus the 4-slice CT2 series."""
    ct2 = sorted((pydicom_files / "dicomdirtests" / "77654033" / "CT2").iterdir())
    return [pydicom_files / name for name in SAMPLES] + ct2


@pytest.fixture(scope="module")
def seeded_db(pydicom_files: Path) -> Iterator[Database]:
    """A temporary database holding :func:`sample_files`."""
    with Database.temporary() as db:
        report = db.import_path(sample_files(pydicom_files))
        assert report.ok, report.failed
        yield db


@pytest.fixture(scope="module")
def server(seeded_db: Database) -> Iterator[RunningServer]:
    """dicomstation serving :func:`seeded_db` on a free loopback port."""
    running = start_in_thread(create_app(seeded_db, ServerOptions(port=0)))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture()
def client(server: RunningServer) -> DICOMwebClient:
    """dicomweb-client (an independent implementation) pointed at our server."""
    return DICOMwebClient(url=f"{server.url}/dicom-web")


@pytest.fixture()
def empty_server() -> Iterator[tuple[Database, RunningServer]]:
    """A fresh empty database and its server, for STOW-RS tests."""
    with Database.temporary() as db:
        options = ServerOptions(port=0, max_request_bytes=2_000_000)
        running = start_in_thread(create_app(db, options))
        try:
            yield db, running
        finally:
            running.stop()
