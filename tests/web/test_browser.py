"""A real browser (Chromium via Playwright) clicks through the whole flow:
query -> metadata -> fetch -> view -> segment -> export SEG -> send to Orthanc.

Screenshots of every step are saved under ``test-artifacts/web/`` (git-ignored).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomstation.config import Credentials, DicomWebServer, Secret
from dicomstation.database import Database
from dicomstation.models import Level, Query
from dicomstation.server import RunningServer, start_in_thread
from dicomstation.settings import Settings
from dicomstation.web import Workstation, create_ui_app
from dicomstation.web.app import login_url
from dicomstation.web.demo import DemoEnvironment
from tests.peers import OrthancServer
from tests.web.browser_support import ARGS, CHROMIUM, OPTIONS

pytestmark = [pytest.mark.browser, pytest.mark.orthanc]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"


@pytest.fixture()
def station(
    demo: DemoEnvironment, clean_orthanc: OrthancServer, tmp_path: Path
) -> Iterator[tuple[Workstation, RunningServer]]:
    """An empty workstation whose settings know the demo server and Orthanc."""
    demo_creds = Credentials(token=demo.pacs_options.token)
    settings = Settings().with_server(DicomWebServer("demo", demo.pacs_url, demo_creds))
    settings = settings.with_server(
        DicomWebServer(
            "orthanc",
            clean_orthanc.dicomweb_url,
            Credentials(clean_orthanc.user, Secret(clean_orthanc.password)),
        )
    )
    settings.save(tmp_path / "settings.toml")
    with Database.temporary() as db:
        ws = Workstation(db, tmp_path / "settings.toml")
        running = start_in_thread(create_ui_app(ws, OPTIONS))
        try:
            yield ws, running
        finally:
            running.stop()


@pytest.fixture()
def page(station: tuple[Workstation, RunningServer]) -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if shutil.which(CHROMIUM) is None:
        pytest.skip("chromium is not installed")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1500, "height": 1000})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            yield page
        finally:
            context.close()
            browser.close()
        assert not errors, errors


def _shot(page: object, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def test_query_metadata_fetch_view_segment_export_send(
    page: object, station: tuple[Workstation, RunningServer], clean_orthanc: OrthancServer
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    ws, running = station
    page.goto(login_url(running.url, OPTIONS))
    expect(page.locator("#server-select option")).to_have_count(3)
    page.select_option("#server-select", "demo")
    page.fill("#browse-filters input[name=PatientName]", "phantom*")
    page.click("#query-button")
    rows = page.locator("#study-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Phantom, Head")  # PN shown formatted
    _shot(page, "01-query")

    rows.first.click()
    card = page.locator("#series-list .series-card").first
    expect(card).to_contain_text("Head phantom")
    expect(card.locator("img")).to_have_js_property("complete", True)
    card.click()
    expect(page.locator("#metadata-table")).to_contain_text("Phantom^Head")
    expect(page.locator("#metadata-title")).to_contain_text("40 instances")
    assert ws.db.find(Query()) == []  # metadata came without fetching anything
    _shot(page, "02-metadata")

    rows.first.locator("input[type=checkbox]").check()
    page.click("#fetch-button")
    job = page.locator("#jobs .job", has_text="from demo")
    expect(job).to_have_attribute("data-state", "done", timeout=30_000)
    expect(job).to_contain_text("40/40")
    assert len(ws.db.find(Query(Level.IMAGE))) == 40
    _shot(page, "03-fetched")

    page.click("#tab-local")
    page.locator("#local-study-table tbody tr").first.click()
    page.locator("#local-series-list .view-button").first.click()
    expect(page.locator("#viewer-body")).to_be_visible()
    for view in ("axial", "coronal", "sagittal"):
        expect(page.locator(f"#view-{view}")).to_have_js_property("complete", True)
        assert page.locator(f"#view-{view}").evaluate("img => img.naturalWidth") > 0
    page.select_option("#preset", "bone")
    expect(page.locator("#wl-center")).to_have_value("400")
    _shot(page, "04-viewer-bone")

    page.fill("#seg-low", "300")
    page.fill("#seg-high", "3000")
    page.click("#threshold-button")
    expect(page.locator("#seg-result")).to_contain_text("voxels")
    axial = page.locator("#view-axial")
    box = axial.bounding_box()
    assert box is not None
    # the skull's left edge on the middle row of the phantom (column 10 of 128)
    axial.click(position={"x": box["width"] * 10.5 / 128, "y": box["height"] * 64.5 / 128})
    expect(page.locator("#seed-list")).to_contain_text("64,10")
    page.click("#grow-button")
    expect(page.locator("#status")).to_contain_text("segmented (region_grow)")
    # the skull is one connected piece: growing from it finds the whole threshold mask
    expect(page.locator("#seg-result")).to_contain_text("73616 voxels")
    page.check("#mip")
    page.uncheck("#mip")
    _shot(page, "05-segmented")

    page.click("#export-open")
    page.select_option("#export-kind", "SEG")
    page.fill("#export-description", "Bone SEG (browser test)")
    page.click("#export-confirm")
    # the export is a ledger job (load, segment, export again): it may take a few seconds
    expect(page.locator("#export-result")).to_contain_text("exported SEG", timeout=60_000)
    seg = ws.db.find(Query(Level.SERIES, {"Modality": "SEG"}))
    assert len(seg) == 1
    _shot(page, "06-exported")

    page.click("#send-open")
    page.select_option("#send-server", "orthanc")
    expect(page.locator("#send-protocol")).to_contain_text("STOW-RS")
    page.click("#send-confirm")
    sent = page.locator("#jobs .job", has_text="to orthanc")
    expect(sent).to_have_attribute("data-state", "done", timeout=30_000)
    expect(sent).to_contain_text("1/1")
    expect(page.locator("#status")).to_contain_text("done")
    _shot(page, "07-sent")
    with clean_orthanc.rest() as rest:
        found = rest.post("/tools/find", json={"Level": "Series", "Query": {"Modality": "SEG"}})
        assert len(found.json()) == 1


def test_settings_page_keeps_secrets_write_only(
    page: object, station: tuple[Workstation, RunningServer]
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    ws, running = station
    page.goto(login_url(running.url, OPTIONS))
    page.click("#tab-settings")
    form = page.locator("#server-form")
    form.locator("input[name=name]").fill("hospital")
    form.locator("input[name=url]").fill("https://pacs.hospital.example/dicom-web")
    form.locator("input[name=username]").fill("alice")
    form.locator("input[name=password]").fill("very-secret-pw")
    page.click("#save-server")
    row = page.locator("#server-table tr[data-name=hospital]")
    expect(row).to_contain_text("https://pacs.hospital.example/dicom-web")
    expect(row).to_contain_text("set")
    expect(form.locator("input[name=password]")).to_have_value("")
    page.reload()
    page.click("#tab-settings")
    expect(page.locator("#server-table tr[data-name=hospital]")).to_be_visible()
    assert "very-secret-pw" not in page.content()
    saved = ws.settings().server("hospital")
    assert saved.credentials.password.reveal() == "very-secret-pw"  # type: ignore[union-attr]
    _shot(page, "08-settings")
    expect(page.locator("#server-select option[value=hospital]")).to_have_count(1)
