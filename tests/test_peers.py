"""The test harness itself: Orthanc starts on loopback only, with auth and DICOMweb."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.peers import OrthancServer


def _listening_addresses(port: int) -> set[str]:
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        lines = Path(table).read_text().splitlines()[1:]
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hexport = local.split(":")
            if int(hexport, 16) == port and state == "0A":  # LISTEN
                found.add(address)
    return found


@pytest.mark.orthanc
def test_orthanc_listens_on_loopback_only(orthanc: OrthancServer) -> None:
    for port in (orthanc.http_port, orthanc.dicom_port):
        addresses = _listening_addresses(port)
        assert addresses, f"nothing listens on {port}"
        assert addresses <= {"0100007F", "00000000000000000000000001000000"}, addresses
    assert socket.gethostbyname("localhost") == "127.0.0.1"


@pytest.mark.orthanc
def test_orthanc_requires_auth_and_serves_dicomweb(
    orthanc: OrthancServer, pydicom_files: Path
) -> None:
    assert httpx.get(f"{orthanc.url}/system").status_code == 401
    orthanc.clear()
    orthanc.upload(pydicom_files / "CT_small.dcm")
    response = httpx.get(f"{orthanc.dicomweb_url}/studies", auth=(orthanc.user, orthanc.password))
    assert response.status_code == 200
    assert len(response.json()) == 1
