"""Orthanc's DICOMweb client plugin stores into our server (STOW-RS) and reads it back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomstation.config import Secret
from dicomstation.database import Database
from dicomstation.models import Level, Query
from dicomstation.server import RunningServer, ServerOptions, create_app, start_in_thread
from tests.peers import OrthancServer

from .conftest import sample_files

pytestmark = pytest.mark.orthanc


@pytest.fixture()
def target() -> Iterator[tuple[Database, RunningServer]]:
    options = ServerOptions(username="orthanc-peer", password=Secret("peer-pw"))
    with Database.temporary() as db:
        running = start_in_thread(create_app(db, options))
        try:
            yield db, running
        finally:
            running.stop()


def declare_dicomstation(orthanc: OrthancServer, server: RunningServer) -> None:
    """Declare our server (Basic auth orthanc-peer) to Orthanc's DICOMweb client."""
    with orthanc.rest() as rest:
        rest.put(
            "/dicom-web/servers/dicomstation",
            json={
                "Url": f"{server.url}/dicom-web/",
                "Username": "orthanc-peer",
                "Password": "peer-pw",
            },
        ).raise_for_status()


def test_orthanc_stows_into_dicomstation(
    clean_orthanc: OrthancServer, pydicom_files: Path, target: tuple[Database, RunningServer]
) -> None:
    db, server = target
    files = sample_files(pydicom_files)
    clean_orthanc.upload(*files)
    declare_dicomstation(clean_orthanc, server)
    with clean_orthanc.rest() as rest:
        studies = rest.get("/studies").json()
        response = rest.post(
            "/dicom-web/servers/dicomstation/stow", json={"Resources": studies, "Synchronous": True}
        )
        assert response.status_code == 200, response.text
    assert len(db.find(Query(Level.IMAGE))) == len(files)
    originals = {Path(f).name for f in files}
    assert len(originals) == len(files)


def test_orthanc_queries_and_retrieves_from_dicomstation(
    clean_orthanc: OrthancServer, pydicom_files: Path, target: tuple[Database, RunningServer]
) -> None:
    db, server = target
    db.import_path(sample_files(pydicom_files))
    declare_dicomstation(clean_orthanc, server)
    with clean_orthanc.rest() as rest:
        found = rest.post(
            "/dicom-web/servers/dicomstation/get",
            json={"Uri": "/studies", "Arguments": {"ModalitiesInStudy": "CT"}},
        )
        assert found.status_code == 200, found.text
        uids = {s["0020000D"]["Value"][0] for s in found.json()}
        assert len(uids) == 2
        fetched = rest.post(
            "/dicom-web/servers/dicomstation/retrieve",
            json={"Resources": [{"Study": uid} for uid in sorted(uids)], "Synchronous": True},
        )
        assert fetched.status_code == 200, fetched.text
    assert clean_orthanc.count_instances() == 5
