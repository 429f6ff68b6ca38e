"""The UI API is protocol-neutral: browse, fetch and send with a DIMSE server (Orthanc)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dicomstation.config import DimseServer
from dicomstation.database import Database
from dicomstation.models import Level, Query
from dicomstation.server import ServerOptions, start_in_thread
from dicomstation.settings import Settings
from dicomstation.web import Workstation, create_ui_app
from tests.peers import OrthancServer

pytestmark = pytest.mark.orthanc


@pytest.fixture()
def ui(clean_orthanc: OrthancServer, tmp_path: Path) -> Iterator[tuple[Workstation, str, str]]:
    server = DimseServer(
        "pacs-dimse", "ORTHANC", "127.0.0.1", clean_orthanc.dicom_port, calling_ae="GETSCU"
    )
    Settings().with_server(server).save(tmp_path / "settings.toml")
    with Database.temporary() as db:
        ws = Workstation(db, tmp_path / "settings.toml")
        options = ServerOptions().with_launch_token()
        running = start_in_thread(create_ui_app(ws, options))
        try:
            yield ws, running.url, options.token.reveal()
        finally:
            running.stop()


def _wait(client: httpx.Client, job: dict) -> dict:
    deadline = time.monotonic() + 60
    while job["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
        job = client.get(f"/api/jobs/{job['id']}").json()
    return job


def test_browse_fetch_and_send_over_dimse(
    ui: tuple[Workstation, str, str], clean_orthanc: OrthancServer, pydicom_files: Path
) -> None:
    ws, url, token = ui
    clean_orthanc.upload(*sorted((pydicom_files / "dicomdirtests" / "77654033" / "CT2").iterdir()))
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=60, headers=headers) as client:
        servers = {s["name"]: s for s in client.get("/api/servers").json()}
        assert servers["pacs-dimse"]["protocol"] == "dimse"
        studies = client.get("/api/servers/pacs-dimse/studies").json()["items"]
        assert len(studies) == 1
        study = studies[0]["study_uid"]
        series = client.get(f"/api/servers/pacs-dimse/studies/{study}/series").json()
        assert series[0]["modality"] == "CT"
        job = client.post(
            "/api/fetch", json={"server": "pacs-dimse", "items": [{"study": study}]}
        ).json()
        done = _wait(client, job)
        assert done["state"] == "done", done
        assert len(ws.db.find(Query(Level.IMAGE))) == 4
        clean_orthanc.clear()
        sent = _wait(
            client, client.post("/api/send", json={"server": "pacs-dimse", "uids": [study]}).json()
        )
        assert sent["state"] == "done", sent
        assert clean_orthanc.count_instances() == 4
