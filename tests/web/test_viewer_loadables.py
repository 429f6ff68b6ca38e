"""The loadable chooser in Chromium: a Philips field-map series (two echoes, magnitude and
phase: four loadables) opens a dialog listing each with its confidence; Cancel loads
nothing, and the loadable picked is the one loaded. Screenshot in ``test-artifacts/viewer/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dicomstation.volumes import examine
from dicomstation.web import Workstation
from tests.web.browser_support import artifacts, viewer_station

pytestmark = pytest.mark.browser

DATA = Path("../shared/data/dcm_qa_philips_enh/In/cl")
ARTIFACTS = artifacts("viewer")


@pytest.fixture()
def station(tmp_path: Path) -> Iterator[tuple[Any, Workstation]]:
    with viewer_station(tmp_path, sorted(DATA.glob("2001_*")), (1400, 1000)) as station:
        yield station


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
