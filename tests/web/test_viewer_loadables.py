"""The loadable chooser in Chromium: a Philips field-map series (two echoes, magnitude and
phase: four loadables) opens a dialog listing each with its confidence; Cancel loads
nothing, and the loadable picked is the one loaded. Screenshot in ``test-artifacts/viewer/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dicomstation.database import Database
from dicomstation.server import RunningServer, ServerOptions, start_in_thread
from dicomstation.volumes import examine
from dicomstation.web import Workstation, create_ui_app
from dicomstation.web.app import login_url

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DATA = Path("../shared/data/dcm_qa_philips_enh/In/cl")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "viewer"
OPTIONS = ServerOptions().with_launch_token()


@pytest.fixture()
def station(tmp_path: Path) -> Iterator[tuple[Any, Workstation]]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if shutil.which(CHROMIUM) is None:
        pytest.skip("chromium is not installed")
    files = sorted(DATA.glob("2001_*"))
    if not files:
        pytest.skip("../shared/data is not available")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with Database.temporary() as db:
        db.import_path(files)
        ws = Workstation(db, tmp_path / "settings.toml")
        running: RunningServer = start_in_thread(create_ui_app(ws, OPTIONS))
        try:
            with sync_api.sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(login_url(running.url, OPTIONS))
                yield page, ws
                browser.close()
                assert not errors, errors
        finally:
            running.stop()


def test_several_loadables_are_offered_and_the_chosen_one_is_loaded(
    station: tuple[Any, Workstation],
) -> None:
    from playwright.sync_api import expect

    page, ws = station
    page.click("#tab-local")
    page.locator("#local-study-table tbody tr").first.click()
    view = page.locator("#local-series-list .view-button").first
    view.click()
    options = page.locator("#loadable-list label.loadable")
    expect(options).to_have_count(4)
    expect(options.nth(0)).to_contain_text("confidence 0.80")
    expect(options.nth(2)).to_contain_text("PHASE MAP")
    page.screenshot(path=str(ARTIFACTS / "loadables-01-chooser.png"), full_page=True)
    page.click("#loadable-dialog button[value=cancel]")
    expect(page.locator("#loadable-dialog")).not_to_be_visible()
    assert ws.viewer.volumes == {}  # cancelled: nothing loaded

    view.click()
    options.nth(2).locator("input").check()
    page.click("#loadable-confirm")
    expect(page.locator("#viewer-body")).to_be_visible(timeout=60_000)
    expect(page.locator("#view-axial")).to_have_js_property("complete", True)
    (item,) = ws.viewer.volumes.values()
    wanted = examine(ws.db.series_files(item.loaded.series_instance_uid))[2]
    assert "PHASE MAP" in wanted.name
    assert set(item.loaded.sop_instance_uids) == {f.source.sop_instance_uid for f in wanted.frames}
