"""The UI's "Request automated segmentation" posts a workitem that the worker accepts (Chromium)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from dicomstation.config import Credentials, DicomWebServer, Secret
from dicomstation.database import Database
from dicomstation.pipeline.ups_worker import parse_workitem
from dicomstation.server import RunningServer, start_in_thread
from dicomstation.server.ups_store import UPS_NAME, UpsStore
from dicomstation.settings import Settings
from dicomstation.web import Workstation, create_ui_app
from dicomstation.web.app import login_url
from tests.peers import OrthancServer
from tests.synth import ct_dataset
from tests.web.browser_support import ARGS, CHROMIUM, OPTIONS

pytestmark = [pytest.mark.browser, pytest.mark.orthanc]


@pytest.fixture()
def station(
    clean_orthanc: OrthancServer, tmp_path: Path
) -> Iterator[tuple[RunningServer, Database, Settings, str]]:
    """A UI with server 'orthanc' holding one 3-slice CT study."""
    settings = Settings(
        servers={
            "orthanc": DicomWebServer(
                "orthanc",
                clean_orthanc.dicomweb_url,
                Credentials(clean_orthanc.user, Secret(clean_orthanc.password)),
            )
        }
    )
    settings.save(tmp_path / "settings.toml")
    study, series, paths = generate_uid(), generate_uid(), []
    for i in range(3):
        ds = ct_dataset(i, study_uid=study, series_uid=series, size=16)
        paths.append(tmp_path / f"{i}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    clean_orthanc.upload(*paths)
    with Database.open(tmp_path / "db") as db:
        running = start_in_thread(
            create_ui_app(Workstation(db, tmp_path / "settings.toml"), OPTIONS)
        )
        try:
            yield running, db, settings, study
        finally:
            running.stop()


def test_request_segmentation_posts_a_workitem_the_worker_accepts(
    station: tuple[RunningServer, Database, Settings, str],
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if shutil.which(CHROMIUM) is None:
        pytest.skip("chromium is not installed")
    running, db, settings, study = station
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(login_url(running.url, OPTIONS))
            sync_api.expect(page.locator("#segment-button")).to_be_disabled()
            page.select_option("#server-select", "orthanc")
            page.click("#query-button")
            row = page.locator(f'#study-table tbody tr[data-uid="{study}"]')
            row.locator("input[type=checkbox]").check()
            page.click("#segment-button")
            sync_api.expect(page.locator("#status")).to_contain_text("1 segmentation workitem")
        finally:
            browser.close()
    items = UpsStore(db.root / UPS_NAME).all("SCHEDULED")
    assert len(items) == 1
    task = parse_workitem(items[0], settings.servers)
    assert (task.study_uid, task.source, task.destination) == (study, "orthanc", "orthanc")
