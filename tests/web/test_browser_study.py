"""Study browser remainders of issue 14, in Chromium against a real Orthanc.

A total count beside the pager ("of 13 studies"), selections kept across pages,
fetch progress in one unit per count (items, instances: the instance total is
the whole job's, never a partial sum such as "8/1"), and a series clicked in the
Local database tab shown in that tab's own detail (the Browse panel untouched).
Screenshots go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dicomstation.config import Credentials, DicomWebServer, Secret
from dicomstation.database import Database
from dicomstation.models import Level, Query
from dicomstation.server import RunningServer
from dicomstation.settings import Settings
from dicomstation.web import Workstation
from tests.peers import OrthancServer
from tests.synth import write_ct_series
from tests.web.browser_support import artifacts, chromium_context, logged_in_page, serve_ui

pytestmark = [pytest.mark.browser, pytest.mark.orthanc, pytest.mark.timeout(300)]

ARTIFACTS = artifacts("browser")
BIG = {"BIG1": 8, "BIG2": 5, "BIG3": 1}  # patient id -> instances (fetched together)
SINGLES = 10


@pytest.fixture()
def ui(clean_orthanc: OrthancServer, tmp_path: Path) -> Iterator[tuple[Workstation, RunningServer]]:
    files: list[Path] = []
    for n, (patient, count) in enumerate(BIG.items()):
        files += write_ct_series(
            tmp_path / patient,
            count,
            patient_id=patient,
            size=32,
            patient_name=f"BIG^{n}",
            study_date=f"2024010{n + 1}",
        )
    for n in range(SINGLES):
        files += write_ct_series(
            tmp_path / f"s{n}",
            1,
            patient_id=f"ONE{n:02d}",
            size=16,
            patient_name=f"ONE^{n:02d}",
            study_date=f"202402{n + 10}",
        )
    clean_orthanc.upload(*files)
    creds = Credentials(clean_orthanc.user, Secret(clean_orthanc.password))
    Settings().with_server(DicomWebServer("o", clean_orthanc.dicomweb_url, creds)).save(
        tmp_path / "settings.toml"
    )
    with Database.temporary() as db:
        ws = Workstation(db, tmp_path / "settings.toml")
        with serve_ui(ws) as running:
            yield ws, running


@pytest.fixture()
def page(ui: tuple[Workstation, RunningServer]) -> Iterator[Any]:
    with chromium_context((1500, 1000)) as context, logged_in_page(context, ui[1].url) as page:
        yield page


def _query(page: Any, patient_id: str = "") -> None:
    page.select_option("#server-select", "o")
    page.fill("#browse-filters input[name=PatientID]", patient_id)
    page.click("#query-button")


def _checked(page: Any) -> dict[str, bool]:
    rows = page.locator("#study-table tbody tr")
    return {
        str(rows.nth(i).get_attribute("data-uid")): rows.nth(i).locator("input").is_checked()
        for i in range(rows.count())
    }


def test_total_count_and_selection_kept_across_pages(page: Any) -> None:
    from playwright.sync_api import expect

    total = len(BIG) + SINGLES
    rows = page.locator("#study-table tbody tr")
    page.select_option("#page-size", "10")
    _query(page)
    expect(rows).to_have_count(10)
    expect(page.locator("#total-label")).to_have_text(f"of {total} studies")
    rows.first.locator("input").check()
    first = str(rows.first.get_attribute("data-uid"))
    page.click("#next-page")
    expect(rows).to_have_count(total - 10)
    expect(page.locator("#page-label")).to_have_text(f"11\u2013{total}")
    expect(page.locator("#total-label")).to_have_text(f"of {total} studies")
    rows.last.locator("input").check()
    last = str(rows.last.get_attribute("data-uid"))
    page.click("#prev-page")
    expect(rows).to_have_count(10)
    assert _checked(page)[first] and sum(_checked(page).values()) == 1
    page.screenshot(path=str(ARTIFACTS / "01-paged-selection.png"), full_page=True)
    page.click("#next-page")
    expect(rows).to_have_count(total - 10)
    assert _checked(page)[last] and sum(_checked(page).values()) == 1
    expect(page.locator("#fetch-button")).to_be_enabled()

    _query(page, "BIG*")  # a new query: three studies, counted from the last page
    expect(rows).to_have_count(3)
    expect(page.locator("#total-label")).to_have_text("of 3 studies")


def test_fetch_progress_counts_one_unit_each(
    page: Any, ui: tuple[Workstation, RunningServer]
) -> None:
    from playwright.sync_api import expect

    _query(page, "BIG*")
    rows = page.locator("#study-table tbody tr")
    expect(rows).to_have_count(3)
    for i in range(3):
        rows.nth(i).locator("input").check()
    page.evaluate(
        """() => { window.seenDetails = [];
        new MutationObserver(() => document.querySelectorAll('#jobs .job .detail')
          .forEach(d => window.seenDetails.push(d.textContent)))
        .observe(document.querySelector('#jobs'),
                 {subtree: true, childList: true, characterData: true}); }"""
    )
    page.click("#fetch-button")
    job = page.locator("#jobs .job", has_text="from o")
    expect(job).to_have_attribute("data-state", "done", timeout=60_000)
    instances = sum(BIG.values())
    expect(job).to_contain_text("3/3 item(s)")
    expect(job).to_contain_text(f"{instances}/{instances} instances")
    page.screenshot(path=str(ARTIFACTS / "02-fetch-progress.png"), full_page=True)
    seen = page.evaluate("window.seenDetails")
    counts = [re.search(r"(\d+)/(\S+) instances", text) for text in seen]
    shown = [(int(m[1]), m[2]) for m in counts if m]
    assert shown, seen
    for done, total in shown:  # never a partial or item-count total
        assert total in ("?", str(instances)) and done <= instances, seen
    for text in seen:
        found = re.search(r"(\d+)/(\d+) item\(s\)", text)
        assert found is None or int(found[1]) <= int(found[2]) == len(BIG), seen
    assert len(ui[0].db.find(Query(Level.IMAGE))) == instances


def test_local_series_details_stay_in_the_local_tab(
    page: Any, ui: tuple[Workstation, RunningServer]
) -> None:
    from playwright.sync_api import expect

    ws = ui[0]
    job = ws.fetch("o", [(s["study_uid"], []) for s in ws.query("o", Query(Level.STUDY))][:2])
    assert ws.jobs.wait(job.id).state == "done"
    page.click("#tab-local")
    expect(page.locator("#local-count")).to_have_text("2 studies")
    page.locator("#local-study-table tbody tr").first.click()
    page.locator("#local-series-list .series-card").first.click()
    local_rows = page.locator("#local #metadata-table tbody tr")
    expect(local_rows.first).to_be_visible()
    expect(page.locator("#local #metadata-table")).to_contain_text("Patient ID")
    expect(page.locator("#browse #metadata-panel")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "03-local-series-detail.png"), full_page=True)
    page.locator("#local-study-table tbody tr").last.click()  # another study: no stale detail
    expect(local_rows).to_have_count(0)
    page.locator("#local-series-list .series-card").first.click()
    expect(local_rows.first).to_be_visible()
    page.click("#tab-browse")  # the Browse panel gets its (empty) detail back
    expect(page.locator("#browse #metadata-panel")).to_have_count(1)
    expect(page.locator("#browse #metadata-table tbody tr")).to_have_count(0)
    expect(page.locator("#local #metadata-panel")).to_have_count(0)
