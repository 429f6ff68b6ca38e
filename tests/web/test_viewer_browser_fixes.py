"""Study browser fixes of issue 14, in Chromium: no query of a server the user did not pick,
stale rows cleared on a new query and on an error, formatted names and dates, sortable
columns, series sorted by number, series selections kept, confirmation before removing
a server. Screenshots go to ``test-artifacts/viewer/``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dicomstation.config import DicomWebServer
from dicomstation.database import Database
from dicomstation.server import RunningServer
from dicomstation.settings import Settings
from dicomstation.web import Workstation
from tests.web.browser_support import artifacts, chromium_context, logged_in_page, serve_ui

pytestmark = pytest.mark.browser

DATA = Path("../shared/data")
FILES = [
    DATA / "dcmqi_ct_seg_sr" / "ct-3slice",
    DATA / "dcmqi_ct_seg_sr" / "seg",
    DATA / "pydicom_testfiles_subset",
]
ARTIFACTS = artifacts("viewer")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def ui(tmp_path: Path) -> Iterator[tuple[Workstation, RunningServer]]:
    if not all(p.exists() for p in FILES):
        pytest.skip("../shared/data is not available")
    down = DicomWebServer("aaa-down", f"http://127.0.0.1:{_closed_port()}/dicom-web")
    Settings().with_server(down).save(tmp_path / "settings.toml")
    with Database.temporary() as db:
        db.import_path(FILES[:2])
        db.import_path(sorted((FILES[2]).glob("CT_small*.dcm"))[:1])
        ws = Workstation(db, tmp_path / "settings.toml")
        with serve_ui(ws) as running:
            yield ws, running


@pytest.fixture()
def page(ui: tuple[Workstation, RunningServer]) -> Iterator[tuple[Any, list[str]]]:
    asked: list[str] = []
    with chromium_context((1400, 900)) as context:
        context.on("request", lambda r: asked.append(r.url))
        with logged_in_page(context, ui[1].url) as page:
            yield page, asked


def _column(page: Any, index: int) -> list[str]:
    cells = page.locator(f"#study-table tbody tr td:nth-child({index})")
    return [str(t) for t in cells.all_inner_texts()]


def test_study_browser_state_formatting_sorting_and_confirmation(
    page: tuple[Any, list[str]], ui: tuple[Workstation, RunningServer]
) -> None:
    from playwright.sync_api import expect

    p, asked = page
    expect(p.locator("#status")).to_have_text("pick a server and press Query")
    assert p.locator("#server-select").input_value() == "aaa-down"  # preselected, not queried
    assert not [u for u in asked if "/studies" in u], asked

    p.select_option("#server-select", "local")
    p.click("#query-button")
    rows = p.locator("#study-table tbody tr")
    expect(rows).to_have_count(2)
    names = _column(p, 2)
    assert all("^" not in n for n in names) and any(", " in n for n in names), names
    dates = _column(p, 4)
    assert all(len(d) == 10 and d[4] == "-" and d[7] == "-" for d in dates), dates

    p.click("#study-table thead th:nth-child(4)")  # Date, ascending
    assert _column(p, 4) == sorted(dates)
    p.click("#study-table thead th:nth-child(4)")  # again: descending
    assert _column(p, 4) == sorted(dates, reverse=True)
    expect(p.locator("#study-table thead th:nth-child(4)")).to_have_attribute("data-sorted", "desc")

    ct = rows.filter(has_text="99000")
    ct.click()
    cards = p.locator("#series-list .series-card .caption")
    expect(cards).to_have_count(3)
    numbers = [int(t.split()[0].lstrip("#")) for t in cards.all_inner_texts()]
    assert numbers == sorted(numbers), numbers
    p.locator("#series-list .series-select").nth(1).check()
    p.click("#study-table tbody tr >> nth=0")
    ct.click()  # back to the study: its chosen series is still ticked
    expect(p.locator("#series-list .series-select").nth(1)).to_be_checked()
    p.screenshot(path=str(ARTIFACTS / "browser-01-sorted.png"), full_page=True)

    p.select_option("#server-select", "aaa-down")
    p.click("#query-button")
    expect(p.locator("#status")).to_have_class("error", timeout=30_000)
    expect(p.locator("#status")).to_contain_text("aaa-down")
    expect(rows).to_have_count(0)  # the local rows are gone, not shown under aaa-down
    expect(p.locator("#series-list .series-card")).to_have_count(0)
    p.screenshot(path=str(ARTIFACTS / "browser-02-error-clears.png"), full_page=True)

    p.click("#tab-settings")
    remove = p.locator("#server-table tr[data-name=aaa-down] .remove-server")
    p.once("dialog", lambda d: d.dismiss())
    remove.click()
    expect(p.locator("#server-table tr[data-name=aaa-down]")).to_have_count(1)
    assert "aaa-down" in Settings.load(ui[0].settings_path).servers
    p.once("dialog", lambda d: d.accept())
    remove.click()
    expect(p.locator("#server-table tr[data-name=aaa-down]")).to_have_count(0)
    assert "aaa-down" not in Settings.load(ui[0].settings_path).servers
