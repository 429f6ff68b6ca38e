"""The Pipelines page: a fetch job survives a restart of ``dicomstation ui`` and is resumed.

``dicomstation ui`` (a real subprocess) starts fetching a study from the real
Orthanc through a fault proxy that hangs mid-answer; the UI is SIGKILLed; a new
``dicomstation ui`` on the same database shows the job on the Pipelines page
(Chromium via Playwright); clicking Resume fetches the study; the page shows
the item done, and the database holds every instance. The JSON API is checked too.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dicomstation.config import Credentials, DicomWebServer, Secret
from dicomstation.database import Database
from dicomstation.models import Level, Query
from dicomstation.pipeline import LEDGER_NAME, Ledger
from dicomstation.pipeline.cluster_info import CLUSTER_INFO, write_cluster
from dicomstation.settings import Settings
from tests.dicomweb.faultproxy import FaultProxy, Faults
from tests.peers import OrthancServer, free_port
from tests.synth import write_ct_series

pytestmark = [pytest.mark.browser, pytest.mark.orthanc, pytest.mark.timeout(180)]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
STUDY = "1.2.826.0.1.3680043.8.498.6601"


class UI:
    """``dicomstation ui --no-token`` on a free loopback port, as a subprocess."""

    def __init__(self, db: Path, settings: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, DICOMSTATION_CONFIG=str(settings))
        command = [sys.executable, "-m", "dicomstation.cli.main", "ui", "--db", str(db)]
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port), "--no-token"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, log.read_text(errors="replace")
            try:
                if httpx.get(f"{self.url}/api/servers", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"dicomstation ui did not start: {log.read_text(errors='replace')}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.kill()


@pytest.fixture()
def proxied(clean_orthanc: OrthancServer, tmp_path: Path) -> Iterator[tuple[FaultProxy, Path]]:
    """Orthanc with one 8-slice study, behind a fault proxy; settings naming it 'o'."""
    clean_orthanc.upload(*write_ct_series(tmp_path / "ct", 8, study_uid=STUDY))
    with FaultProxy(clean_orthanc.dicomweb_url) as proxy:
        creds = Credentials(username=clean_orthanc.user, password=Secret(clean_orthanc.password))
        settings = Settings(servers={"o": DicomWebServer("o", proxy.url, creds)})
        settings.save(tmp_path / "settings.toml")
        yield proxy, tmp_path / "settings.toml"


def _start_hanging_fetch(ui: UI, proxy: FaultProxy) -> str:
    proxy.faults = Faults(match="/studies/", accept="multipart", hang_after=2000)
    answer = httpx.post(
        f"{ui.url}/api/fetch", json={"server": "o", "items": [{"study": STUDY}]}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 60
    while not any("multipart" in r for r in proxy.faults.requests):  # the retrieve has begun
        assert time.monotonic() < deadline, proxy.faults.requests
        time.sleep(0.05)
    return str(answer.json()["id"])


def test_fetch_job_survives_ui_restart_and_resumes(
    proxied: tuple[FaultProxy, Path], tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if shutil.which(CHROMIUM) is None:
        pytest.skip("chromium is not installed")
    proxy, settings = proxied
    db = tmp_path / "db"
    first = UI(db, settings, tmp_path / "ui.log")
    try:
        job = _start_hanging_fetch(first, proxy)
    finally:
        first.kill()  # mid-fetch: no clean shutdown
    proxy.faults = Faults()  # the network is fine again
    second = UI(db, settings, tmp_path / "ui.log")
    try:
        listing = httpx.get(f"{second.url}/api/pipelines", timeout=10).json()
        assert job in [j["job"] for j in listing["jobs"]]
        assert listing["cluster"] is None
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                _resume_in_browser(browser.new_page(), second.url, job)
            finally:
                browser.close()
        detail = httpx.get(f"{second.url}/api/pipelines/{job}", timeout=10).json()
        assert [i["state"] for i in detail["items"]] == ["done"]
    finally:
        second.stop()
    with Database.open(db) as database:
        assert len(database.find(Query(Level.IMAGE, study_uid=STUDY))) == 8
    with Ledger.open(db / LEDGER_NAME) as ledger:
        assert [i.state.value for i in ledger.items(job)] == ["done"]


def _resume_in_browser(page: object, url: str, job: str) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))  # type: ignore[attr-defined]
    page.goto(url + "/")  # type: ignore[attr-defined]
    page.click("#tab-pipelines")  # type: ignore[attr-defined]
    row = page.locator(f"#pipeline-{job}")  # type: ignore[attr-defined]
    row.wait_for(timeout=20_000)
    items = page.locator("#pipeline-items tbody tr")  # type: ignore[attr-defined]
    items.first.wait_for(timeout=20_000)
    assert items.first.get_attribute("data-state") in ("running", "pending", "failed")
    row.locator("button.resume").click()
    page.locator('#pipeline-items tbody tr[data-state="done"]').wait_for(timeout=60_000)  # type: ignore[attr-defined]
    assert not errors, errors


def test_pipelines_api_lists_items_and_dashboard(tmp_path: Path) -> None:
    """The JSON API: bounded item lists, state filter, unknown jobs, the announced dashboard."""
    from dicomstation.pipeline import StepRecord, StepState, WorkItem
    from dicomstation.server import ServerOptions, start_in_thread
    from dicomstation.web import Workstation, create_ui_app

    with Database.temporary() as db:
        with Ledger.open(db.root / LEDGER_NAME) as ledger:
            ledger.ensure_job("abc123", "cohort", "{}")
            ledger.add_items("abc123", [WorkItem(f"1.2.{n}") for n in range(5)], ["fetch"])
            ledger.record("abc123", "1.2.0", StepRecord("fetch", StepState.DONE, ("1.2.0.1",)))
            ledger.finish_item("abc123", "1.2.0", StepState.DONE)
            ledger.mark_running("abc123", "1.2.1")  # as the driver does: the item, then its step
            ledger.mark_running("abc123", "1.2.1", "fetch")
        write_cluster(
            db.root / CLUSTER_INFO, "local:2", "tcp://127.0.0.1:1", "http://127.0.0.1:2/status"
        )
        ws = Workstation(db, tmp_path / "settings.toml")
        running = start_in_thread(create_ui_app(ws, ServerOptions(port=0)))
        try:
            _check_api(httpx.Client(base_url=running.url, timeout=10))
        finally:
            running.stop()


def _check_api(client: httpx.Client) -> None:
    with client:
        listing = client.get("/api/pipelines").json()
        assert [j["job"] for j in listing["jobs"]] == ["abc123"]
        assert listing["cluster"]["dashboard"] == "http://127.0.0.1:2/status"
        detail = client.get("/api/pipelines/abc", params={"limit": 2}).json()
        assert (len(detail["items"]), detail["more"]) == (2, 3)
        running = client.get("/api/pipelines/abc123", params={"state": "running"}).json()
        assert [(i["item"], i["step"]) for i in running["items"]] == [("1.2.1", "fetch")]
        assert client.get("/api/pipelines/ffff").status_code == 404
        assert client.get("/api/pipelines/../x").status_code == 404
        assert client.get("/api/pipelines/abc123", params={"state": "bogus"}).status_code == 400
        assert client.get("/api/pipelines/abc123", params={"limit": 10**6}).status_code == 422
