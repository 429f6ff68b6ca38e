"""Colour images in the workstation viewer, in Chromium: an RGB ultrasound image, YBR_FULL
and YBR_FULL_422 (JPEG) images, a palette-colour image and one of our own exported
Secondary Capture screenshots display in colour, as stored (no window/level: the window
inputs are disabled), pixel for pixel against pydicom's own decoding.
Screenshots go to ``test-artifacts/viewer/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_color_lut

from dicomstation.export import ExportOptions
from dicomstation.web import Workstation
from tests.web.browser_support import artifacts, viewer_station

pytestmark = pytest.mark.browser

DATA = Path("../shared/data")
RGB_US = DATA / "deid_data_us_ct/RGB_IMAGE.dcm"
YBR_422 = DATA / "deid_data_us_ct/ctbrain1.dcm"  # JPEG baseline, YBR_FULL_422
SC_RGB = DATA / "pydicom_data_subset/SC_rgb.dcm"
SC_YBR = DATA / "pydicom_data_subset/SC_ybr_full_uncompressed.dcm"  # the same picture in YBR_FULL
PALETTE = DATA / "pydicom_testfiles_subset/examples_palette.dcm"
GREY_CT = DATA / "dicompyler_rt/ct.0.dcm"
ARTIFACTS = artifacts("viewer")


@pytest.fixture()
def station(tmp_path: Path) -> Iterator[tuple[Any, Workstation]]:
    files = [RGB_US, YBR_422, SC_RGB, SC_YBR, PALETTE, GREY_CT]
    with viewer_station(tmp_path, files, (1400, 1100)) as station:
        yield station


def _series_of(ws: Workstation, path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)


def _open(page: Any, series_uid: str) -> None:
    """Open a series in the viewer through the page's own View action (loadVolume)."""
    from playwright.sync_api import expect

    page.evaluate("uid => { loadVolume({series_uid: uid, description: ''}); }", series_uid)
    expect(page.locator("#viewer-body")).to_be_visible(timeout=60_000)
    page.wait_for_function(
        "() => { const i = document.querySelector('#view-axial');"
        f" return i.src.includes(state.volume.id) && i.complete && i.naturalWidth > 0"
        f" && state.volume.series_uid === '{series_uid}'; }}",
        timeout=60_000,
    )


def _shown(page: Any) -> np.ndarray:
    from PIL import Image

    url = page.locator("#view-axial").get_attribute("src")
    body = page.request.get(urljoin(page.url, url)).body()  # the PNG the view shows
    return np.asarray(Image.open(BytesIO(body)).convert("RGB")).astype(int)


def _colourful(rgb: np.ndarray) -> int:
    return int(np.count_nonzero(np.ptp(rgb, axis=2) > 30))


def test_colour_images_show_as_stored(station: tuple[Any, Workstation]) -> None:
    from playwright.sync_api import expect

    page, ws = station
    _open(page, _series_of(ws, RGB_US))
    expect(page.locator("#wl-center")).to_be_disabled()
    expect(page.locator("#viewer .orient").first).to_be_hidden()  # no patient geometry
    expect(page.locator("#preset option[value='']")).to_contain_text("no window")
    shown = _shown(page)
    assert np.array_equal(shown, pydicom.dcmread(RGB_US).pixel_array)  # RGB as stored
    assert _colourful(shown) > 1000
    page.screenshot(path=str(ARTIFACTS / "colour-01-rgb-us.png"), full_page=True)

    _open(page, _series_of(ws, YBR_422))
    expect(page.locator("#viewer .orient").first).to_be_visible()  # a CT screenshot has IPP/IOP
    shown = _shown(page)
    expected = pydicom.dcmread(YBR_422).pixel_array.astype(int)  # pydicom: YBR -> RGB
    assert shown.shape == expected.shape
    assert np.abs(shown - expected).max() <= 1
    page.screenshot(path=str(ARTIFACTS / "colour-02-ybr-full-422.png"), full_page=True)

    _open(page, _series_of(ws, SC_RGB))
    rgb = _shown(page)
    _open(page, _series_of(ws, SC_YBR))
    ybr = _shown(page)
    assert _colourful(rgb) > 1000
    assert np.abs(rgb - ybr).mean() < 2  # the same picture, stored as RGB and as YBR_FULL

    _open(page, _series_of(ws, PALETTE))
    ds = pydicom.dcmread(PALETTE)
    lut = apply_color_lut(ds.pixel_array, ds).astype(float)  # 16-bit palette entries
    expected = np.round(lut / (65535 if lut.max() > 255 else 255) * 255)
    shown = _shown(page)
    assert np.abs(shown - expected).max() <= 1
    assert _colourful(shown) > 1000
    page.screenshot(path=str(ARTIFACTS / "colour-03-palette.png"), full_page=True)


def test_our_own_secondary_capture_displays(station: tuple[Any, Workstation]) -> None:
    from playwright.sync_api import expect

    page, ws = station
    ct = ws.viewer.load(_series_of(ws, GREY_CT))
    (sc_uid,) = ws.viewer.export(
        ct.id, "SC", ExportOptions(series_description="screenshot"), window=(40.0, 400.0)
    )
    stored = pydicom.dcmread(ws.db.series_files(sc_uid)[0])
    assert stored.PhotometricInterpretation == "RGB"
    _open(page, sc_uid)
    expect(page.locator("#wl-width")).to_be_disabled()
    shown = _shown(page)
    assert np.array_equal(shown, stored.pixel_array)
    assert page.evaluate("state.volume.colour") is True  # refused as "colour" before
    assert shown.std() > 10  # the CT slice, not a blank picture
    page.screenshot(path=str(ARTIFACTS / "colour-04-our-secondary-capture.png"), full_page=True)
