"""Workstation viewer in Chromium: default windows (CT soft tissue, MR by percentiles),
right-drag window/level, Ctrl+wheel zoom, Shift+drag pan, wheel scrolling and
orientation letters on each view. Screenshots go to ``test-artifacts/viewer/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dicomstation.web.viewer_windows import default_window
from tests.web.browser_support import artifacts, viewer_station

pytestmark = pytest.mark.browser

DATA = Path("../shared/data")
FILES = [DATA / "dcmqi_ct_seg_sr" / "ct-3slice", DATA / "pydicom_testfiles_subset" / "MR_small.dcm"]
ARTIFACTS = artifacts("viewer")


def test_default_windows() -> None:
    ct = np.array([-1000, 0, 3000], dtype=np.int16)
    assert default_window("CT", ct).as_json() == {
        "center": 40.0,
        "width": 400.0,
        "source": "CT soft tissue",
    }
    assert default_window("CT", ct, "head").source == "CT brain (head)"
    assert (default_window("CT", ct, "CHEST").center, default_window("CT", ct, "CHEST").width) == (
        50.0,
        350.0,
    )
    mr = np.concatenate([np.arange(1000, dtype=float), [1e6]])  # one hot voxel
    window = default_window("MR", mr)
    assert window.source == "percentiles 1-99"
    low, high = window.center - window.width / 2, window.center + window.width / 2
    assert 9 < low < 11 and 985 < high < 995  # the hot voxel does not stretch the window


@pytest.fixture()
def page(tmp_path: Path) -> Iterator[Any]:
    with viewer_station(tmp_path, FILES, (1500, 1000)) as (page, _ws):
        yield page


def _view(page: Any, patient: str) -> None:
    from playwright.sync_api import expect

    page.click("#tab-local")
    page.locator("#local-study-table tbody tr", has_text=patient).click()
    page.locator("#local-series-list .view-button").first.click()
    expect(page.locator("#viewer-body")).to_be_visible()
    expect(page.locator("#view-axial")).to_have_js_property("complete", True)


def _window(page: Any) -> tuple[float, float]:
    return float(page.input_value("#wl-center")), float(page.input_value("#wl-width"))


def test_viewer_windows_mouse_and_orientation(page: Any) -> None:
    from playwright.sync_api import expect

    _view(page, "4MR1")
    center, width = _window(page)
    expect(page.locator("#preset")).to_contain_text("default: percentiles 1-99")
    assert width > 1 and center > 0  # not a CT preset

    _view(page, "99000")
    assert _window(page) == (40.0, 400.0)  # CT without body part: soft tissue, not brain
    for view, letters in {"axial": "APRL", "coronal": "SIRL", "sagittal": "SIAP"}.items():
        shown = page.locator(f".view-wrap[data-view={view}] .orient").all_inner_texts()
        assert "".join(shown) == letters

    axial = page.locator("#view-axial")
    box = axial.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down(button="right")
    page.mouse.move(x + 60, y - 40, steps=6)
    page.mouse.up(button="right")
    new_center, new_width = _window(page)
    assert new_width > 400 and new_center > 40, (new_center, new_width)
    wanted = re.compile(rf"window={int(new_center)}%2C{int(new_width)}(&|$)")
    expect(axial).to_have_attribute("src", wanted)  # the view is drawn with the new window

    page.keyboard.down("Control")
    page.mouse.wheel(0, -100)
    page.keyboard.up("Control")
    assert "scale(1.25)" in str(axial.evaluate("e => e.style.transform"))
    page.keyboard.down("Shift")
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 30, y + 20, steps=3)
    page.mouse.up()
    page.keyboard.up("Shift")
    assert "translate(30px, 20px)" in str(axial.evaluate("e => e.style.transform"))
    assert page.inner_text("#seed-list") == "none"  # panning placed no seed

    label = page.locator("#axial-label")
    before = label.inner_text()
    page.mouse.wheel(0, 100)
    expect(label).not_to_have_text(before)
    page.screenshot(path=str(ARTIFACTS / "viewer-mouse-01.png"), full_page=True)
    axial.dblclick()
    assert "scale(1)" in str(axial.evaluate("e => e.style.transform"))
