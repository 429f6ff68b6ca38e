"""The metadata panel in Chromium: attribute names from pydicom's dictionary, search by name
or tag, one instance at a time, nested sequences expandable, every person-name group.
Screenshots go to ``test-artifacts/viewer/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dicomstation.web.viewer_meta import dictionary
from tests.web.browser_support import artifacts, viewer_station

pytestmark = pytest.mark.browser

DATA = Path("../shared/data")
FILES = [
    DATA / "dcmqi_ct_seg_sr" / "ct-3slice",
    DATA / "dcmqi_ct_seg_sr" / "seg" / "liver_seg.dcm",
    DATA / "pydicom_testfiles_subset" / "charset_files" / "chrH31.dcm",
]
ARTIFACTS = artifacts("viewer")


def test_dictionary_has_names_and_repeating_groups() -> None:
    names = dictionary()
    assert names["00280030"] == ["PixelSpacing", "Pixel Spacing", "DS"]
    assert names["60XX3000"][0] == "OverlayData"


@pytest.fixture()
def page(tmp_path: Path) -> Iterator[Any]:
    with viewer_station(tmp_path, FILES, (1400, 1000)) as (page, _ws):
        yield page


def _visible(page: Any) -> list[str]:
    return [str(t) for t in page.locator("#metadata-table tbody tr:visible").all_inner_texts()]


def _open_series(page: Any, patient: str, caption: str) -> None:
    from playwright.sync_api import expect

    page.locator("#study-table tbody tr", has_text=patient).click()
    page.locator("#series-list .series-card", has_text=caption).click()
    expect(page.locator("#status")).to_contain_text("metadata of")


def test_metadata_names_search_instances_sequences_and_person_names(page: Any) -> None:
    from playwright.sync_api import expect

    page.select_option("#server-select", "local")
    page.click("#query-button")
    expect(page.locator("#study-table tbody tr")).to_have_count(2)

    _open_series(page, "99000", "CT")
    page.fill("#metadata-filter", "spacing")  # by name: tag numbers alone would not match
    shown = _visible(page)
    assert any("Pixel Spacing" in r and "0.810547" in r for r in shown), shown
    page.fill("#metadata-filter", "(0028,0030)")  # by tag
    assert [r for r in _visible(page) if "Pixel Spacing" in r]
    page.fill("#metadata-filter", "InstanceNumber")  # by keyword
    first = _visible(page)
    assert len(first) == 1 and first[0].rstrip().endswith("1"), first
    page.select_option("#metadata-instance", "2")  # the third instance of three
    assert _visible(page)[0].rstrip().endswith("3")
    page.screenshot(path=str(ARTIFACTS / "metadata-01-search.png"), full_page=True)

    page.fill("#metadata-filter", "")
    _open_series(page, "99000", "SEG")
    segment = page.locator("#metadata-table tbody tr.sequence", has_text="Segment Sequence")
    label = page.locator("#metadata-table tbody tr", has_text="Segment Label")
    expect(label).to_be_hidden()
    segment.locator("button.expand").click()
    expect(label).to_be_visible()
    expect(label).to_contain_text("Liver")
    page.screenshot(path=str(ARTIFACTS / "metadata-02-sequence.png"), full_page=True)
    segment.locator("button.expand").click()
    expect(label).to_be_hidden()

    _open_series(page, "Yamada", "OT")
    page.fill("#metadata-filter", "patient's name")
    expect(page.locator("#metadata-table tbody tr:visible")).to_contain_text(
        "Yamada^Tarou=山田^太郎=やまだ^たろう"
    )
    page.screenshot(path=str(ARTIFACTS / "metadata-03-person-name.png"), full_page=True)
