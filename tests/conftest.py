"""Shared fixtures: real data locations and real peers (Orthanc, dcmtk).

Peers are started on 127.0.0.1, on free ports, and stopped by the fixture.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers import OrthancServer, free_port, start_orthanc

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()


#: the proxy variables (either case) that would send test requests to the runner's proxy
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def pytest_configure(config: pytest.Config) -> None:
    """Every peer of the tests listens on 127.0.0.1: the runner's proxy variables (honoured
    by the DICOMweb client, as by curl) must not send those requests to a proxy."""
    for name in PROXY_VARIABLES:
        os.environ.pop(name, None)
        os.environ.pop(name.upper(), None)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real scanner data); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def pydicom_files() -> Path:
    """pydicom's own test files directory (a PyPI data package)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    return Path(path).parent


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """A real Orthanc with the DICOMweb plugin and Basic auth, for the whole session."""
    if shutil.which("Orthanc") is None:
        pytest.skip("Orthanc is not installed (make test installs it)")
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def clean_orthanc(orthanc: OrthancServer) -> OrthancServer:
    """The session Orthanc, emptied of every study before the test."""
    orthanc.clear()
    return orthanc


__all__ = ["free_port"]
