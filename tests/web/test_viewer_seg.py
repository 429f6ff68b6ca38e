"""SEG overlays in the workstation viewer, in Chromium: opening the dcmqi CT lists both of its
SEGs from the database with every segment's name and colour; toggling segments draws them
on the CT in their colours. Screenshots go to ``test-artifacts/viewer/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import numpy as np
import pytest
from PIL import Image

from dicomstation.web.viewer_seg import lab_to_rgb
from tests.web.browser_support import artifacts, viewer_station

pytestmark = pytest.mark.browser

DATA = Path("../shared/data/dcmqi_ct_seg_sr")
ARTIFACTS = artifacts("viewer")


def test_lab_to_rgb() -> None:
    assert lab_to_rgb([65535, 32896, 32896]) == (255, 255, 255)  # L=100, a=b=0
    assert lab_to_rgb([0, 32896, 32896]) == (0, 0, 0)
    r, g, b = lab_to_rgb([43803, 26565, 37722])  # dcmqi's "GREEN"
    assert g > r and g > b


@pytest.fixture()
def page(tmp_path: Path) -> Iterator[Any]:
    with viewer_station(tmp_path, [DATA / "ct-3slice", DATA / "seg"], (1500, 1100)) as (page, _ws):
        yield page


def _axial_rgb(page: Any) -> np.ndarray:
    url = page.locator("#view-axial").get_attribute("src")
    body = page.request.get(urljoin(page.url, url)).body()  # the same PNG the view shows
    return np.asarray(Image.open(BytesIO(body)).convert("RGB")).astype(int)


def test_ct_shows_its_seg_overlays_with_names_and_colours(page: Any) -> None:
    from playwright.sync_api import expect

    page.click("#tab-local")
    page.locator("#local-study-table tbody tr").first.click()
    page.locator("#local-series-list .series-card", has_text="CT").locator(".view-button").click()
    expect(page.locator("#viewer-body")).to_be_visible()
    boxes = page.locator("#seg-overlays input[type=checkbox]")
    expect(boxes).to_have_count(6)  # liver (1 segment) + partial overlaps (5 segments)
    expect(page.locator("#seg-overlays")).to_contain_text("Liver")
    expect(page.locator("#seg-overlays")).to_contain_text("GREEN")
    grey = _axial_rgb(page)
    assert np.all(grey[..., 0] == grey[..., 1])  # no overlay yet: a grey picture

    liver = page.locator("#seg-overlays label", has_text="Liver").locator("input")
    liver.check()
    expect(page.locator("#view-axial")).to_have_attribute("src", re.compile("render-segs"))
    expect(page.locator("#view-axial")).to_have_js_property("complete", True)
    tinted = _axial_rgb(page)
    coloured = np.count_nonzero(np.ptp(tinted, axis=2) > 30)
    assert coloured > 1000, coloured  # the liver, in its colour
    page.screenshot(path=str(ARTIFACTS / "seg-01-liver.png"), full_page=True)

    liver.uncheck()
    page.locator("#seg-overlays label", has_text="GREEN").locator("input").check()
    expect(page.locator("#view-axial")).to_have_js_property("complete", True)
    green = _axial_rgb(page) - grey  # what the overlay changed
    hit = np.abs(green).sum(axis=2) > 10
    assert np.count_nonzero(hit) > 1000
    mean = green[hit].mean(axis=0)
    assert mean[1] > mean[0] and mean[1] > mean[2], mean  # drawn in dcmqi's green
    page.screenshot(path=str(ARTIFACTS / "seg-02-green.png"), full_page=True)
