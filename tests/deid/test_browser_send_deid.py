"""Chromium ticks the send dialog's De-identify box; Orthanc receives pseudonyms only."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from dicomstation.config import Credentials, DicomWebServer, Secret
from dicomstation.database import Database
from dicomstation.server import RunningServer, start_in_thread
from dicomstation.settings import Settings
from dicomstation.web import Workstation, create_ui_app
from dicomstation.web.app import login_url
from tests.deid.synth import KEY, SOP, ct_instance, write_instance
from tests.peers import OrthancServer
from tests.web.browser_support import ARGS, CHROMIUM, OPTIONS

pytestmark = [pytest.mark.browser, pytest.mark.orthanc]


@pytest.fixture()
def station(clean_orthanc: OrthancServer, tmp_path: Path) -> Iterator[RunningServer]:
    """A UI over a database with a 3-slice synthetic CT; server 'orthanc'; the project key."""
    Settings(
        servers={
            "orthanc": DicomWebServer(
                "orthanc",
                clean_orthanc.dicomweb_url,
                Credentials(clean_orthanc.user, Secret(clean_orthanc.password)),
            )
        },
        deid_key=KEY,
    ).save(tmp_path / "settings.toml")
    files = []
    for z in range(3):
        ds = ct_instance()
        ds.SOPInstanceUID = f"{SOP}.{z}"
        ds.InstanceNumber = z + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(z)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [1.0, 1.0]
        ds.SliceThickness = 1.0
        files.append(write_instance(tmp_path / "in" / f"{z}.dcm", ds))
    with Database.open(tmp_path / "db") as db:
        db.add_files(files, move=False)
        running = start_in_thread(
            create_ui_app(Workstation(db, tmp_path / "settings.toml"), OPTIONS)
        )
        try:
            yield running
        finally:
            running.stop()


def test_send_dialog_deid_checkbox(station: RunningServer, clean_orthanc: OrthancServer) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if shutil.which(CHROMIUM) is None:
        pytest.skip("chromium is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(login_url(station.url, OPTIONS))
            page.click("#tab-local")
            page.locator("#local-study-table tbody tr").first.click()
            page.locator("#local-series-list .view-button").first.click()
            sync_api.expect(page.locator("#viewer-body")).to_be_visible()
            page.click("#send-open")
            page.select_option("#send-server", "orthanc")
            page.check("#send-source")
            page.check("#send-deid")
            page.click("#send-confirm")
            sent = page.locator("#jobs .job", has_text="de-identified")
            sync_api.expect(sent).to_have_attribute("data-state", "done", timeout=30_000)
        finally:
            browser.close()
    with clean_orthanc.rest() as rest:
        ids = rest.get("/instances").json()
        raws = [rest.get(f"/instances/{i}/file").content for i in ids]
    assert len(raws) == 3
    for raw in raws:
        assert b"MRN12345" not in raw and b"Doe" not in raw and SOP.encode() not in raw
        assert pydicom.dcmread(pydicom.filebase.DicomBytesIO(raw)).PatientIdentityRemoved == "YES"
