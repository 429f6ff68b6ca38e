"""The web UI's send with ``deid: true``: a ledger pipeline deid -> send, on real Orthanc."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest

from dicomstation.config import Credentials, DicomWebServer, Secret
from dicomstation.database import Database
from dicomstation.deid import Pseudonyms
from dicomstation.server import ServerOptions, start_in_thread
from dicomstation.settings import Settings
from dicomstation.web.app import create_ui_app
from dicomstation.web.workstation import Workstation
from tests.deid.synth import FRAME, KEY, SERIES, SOP, STUDY, write_instance
from tests.peers import OrthancServer

pytestmark = pytest.mark.orthanc
ORIGINALS = ("Doe", "MRN12345", "ACC777", SOP, STUDY, SERIES, FRAME)


@pytest.fixture()
def ui(clean_orthanc: OrthancServer, tmp_path: Path) -> Iterator[tuple[httpx.Client, Workstation]]:
    """The UI app on loopback over a database holding the synthetic CT; server 'o' = Orthanc."""
    settings = tmp_path / "settings.toml"
    Settings(
        servers={"o": DicomWebServer("o", clean_orthanc.dicomweb_url, use_global_auth=True)},
        credentials=Credentials(
            username=clean_orthanc.user, password=Secret(clean_orthanc.password)
        ),
        deid_key=KEY,
    ).save(settings)
    with Database.open(tmp_path / "db") as db:
        db.add_files([write_instance(tmp_path / "in" / "ct.dcm")], move=False)
        ws = Workstation(db, settings)
        options = ServerOptions(port=0).with_launch_token()
        server = start_in_thread(create_ui_app(ws, options))
        headers = {"Authorization": f"Bearer {options.token.reveal()}"}
        try:
            with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
                yield client, ws
        finally:
            server.stop()


def _send(client: httpx.Client, ws: Workstation, body: dict[str, object]) -> dict[str, object]:
    job = client.post("/api/send", json=body)
    assert job.status_code == 200, job.text
    ws.jobs.wait(job.json()["id"])
    done = client.get(f"/api/jobs/{job.json()['id']}").json()
    assert isinstance(done, dict)
    return done


def test_ui_send_with_deid_stores_only_pseudonyms(
    ui: tuple[httpx.Client, Workstation], clean_orthanc: OrthancServer
) -> None:
    client, ws = ui
    done = _send(client, ws, {"server": "o", "uids": [STUDY], "deid": True})
    assert done["state"] == "done", done
    with clean_orthanc.rest() as rest:
        (only,) = rest.get("/instances").json()
        raw = rest.get(f"/instances/{only}/file").content
    for original in ORIGINALS:
        assert original.encode() not in raw, original
    stored = pydicom.dcmread(pydicom.filebase.DicomBytesIO(raw))
    assert stored.PatientIdentityRemoved == "YES"
    assert stored.SOPInstanceUID == Pseudonyms(KEY).uid(SOP)
    again = _send(client, ws, {"server": "o", "uids": [SERIES], "deid": True})
    assert again["state"] == "done", again
    assert clean_orthanc.count_instances() == 1  # same pseudonymous UIDs on resend


def test_ui_send_deid_refusals(
    ui: tuple[httpx.Client, Workstation], clean_orthanc: OrthancServer
) -> None:
    client, ws = ui
    bad = client.post("/api/send", json={"server": "o", "uids": [STUDY], "deid": "yes"})
    assert bad.status_code == 400 and "deid" in bad.json()["detail"]
    Settings(servers=ws.settings().servers).save(ws.settings_path)  # the key is gone
    no_key = client.post("/api/send", json={"server": "o", "uids": [STUDY], "deid": True})
    assert no_key.status_code == 400 and "deid-key --generate" in no_key.json()["detail"]
    assert clean_orthanc.count_instances() == 0
