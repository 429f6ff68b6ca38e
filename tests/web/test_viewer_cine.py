"""Cine playback in the workstation viewer: the frame rate comes from the file
(viewer_cine's order of attributes), and in Chromium the 27-frame Philips US cine plays:
two frames captured while playing differ, the frame index advanced, each shown frame is
the file's frame of that index, and playback is never faster than the file's 30 frames/s.
Screenshots go to ``test-artifacts/viewer/``.
"""

from __future__ import annotations

import base64
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image

from dicomstation.database import Database
from dicomstation.dicomjson import tag_hex
from dicomstation.errors import ProcessingError
from dicomstation.models import Level, Query
from dicomstation.web import Workstation
from dicomstation.web.viewer_cine import frame_timing
from tests.web.browser_support import artifacts, viewer_station

CINE_ZIP = Path("../shared/data/deid_data_us_ct/GREYSCALE_CINE.zip")
ARTIFACTS = artifacts("viewer")


def _header(**values: Any) -> dict[str, Any]:
    out = {}
    for keyword, value in values.items():
        out[tag_hex(keyword)] = {"vr": "DS", "Value": value if isinstance(value, list) else [value]}
    return out


def test_frame_rate_order_and_limits() -> None:
    both = _header(RecommendedDisplayFrameRate=25, CineRate=30, FrameTime=50)
    assert frame_timing(both, 4).fps == 25.0
    assert frame_timing(_header(CineRate=30, FrameTime=50), 3).source.startswith("CineRate")
    assert frame_timing(_header(FrameTime=50), 3).intervals_ms == (50.0, 50.0, 50.0)
    vector = frame_timing(_header(FrameTimeVector=[0, 40, 80, 40], FrameTime=50), 4)
    assert vector.source == "FrameTimeVector"
    assert vector.intervals_ms == (40.0, 80.0, 40.0, 40.0)  # frame i shows until frame i+1
    wrong_length = frame_timing(_header(FrameTimeVector=[0, 40], FrameTime=50), 4)
    assert wrong_length.source.startswith("FrameTime ")
    trigger = frame_timing({}, 3, (0.0, 100.0, 200.0), "TriggerTime")
    assert trigger.intervals_ms == (100.0, 100.0, 100.0)
    assert frame_timing({}, 3, (1.0, 2.0, 3.0), "InstanceNumber").source.startswith("no frame rate")
    hostile = frame_timing(_header(CineRate=1e9), 2)
    assert hostile.intervals_ms == (5.0, 5.0)  # clamped: no busy loop in the browser
    assert frame_timing(_header(FrameTime=-3), 2).source.startswith("no frame rate")


@pytest.fixture()
def cine_file(tmp_path: Path) -> Path:
    if not CINE_ZIP.exists():
        pytest.skip("../shared/data is not available")
    with zipfile.ZipFile(CINE_ZIP) as archive:
        (name,) = [n for n in archive.namelist() if n.lower().endswith(".dcm")]
        archive.extract(name, tmp_path / "cine")
    return tmp_path / "cine" / name


@pytest.fixture()
def station(tmp_path: Path, cine_file: Path) -> Iterator[tuple[Any, Workstation]]:
    with viewer_station(tmp_path, [cine_file], (1300, 1000)) as station:
        yield station


_SHOWN = """() => new Promise(resolve => {
  const img = document.querySelector('#view-axial');
  const grab = () => {
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    canvas.getContext('2d').drawImage(img, 0, 0);
    const frame = new URL(img.src).searchParams.get('frame');
    resolve({frame: Number(frame), png: canvas.toDataURL('image/png')});
  };
  if (img.complete && img.naturalWidth) grab();
  else img.addEventListener('load', grab, {once: true});
})"""


def _shown(page: Any) -> tuple[int, np.ndarray]:
    """The frame index the axial view shows and its pixels, read from the page's own image."""
    got = page.evaluate(_SHOWN)
    png = base64.b64decode(got["png"].split(",", 1)[1])
    return got["frame"], np.asarray(Image.open(BytesIO(png)).convert("L")).astype(float)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.browser
def test_us_cine_plays_at_the_file_rate(station: tuple[Any, Workstation], cine_file: Path) -> None:
    from playwright.sync_api import expect

    page, ws = station
    page.click("#tab-local")
    page.locator("#local-study-table tbody tr").first.click()
    page.locator("#local-series-list .view-button").first.click()
    expect(page.locator("#cine-bar")).to_be_visible(timeout=60_000)
    expect(page.locator("#cine-label")).to_contain_text("frame 1/27")
    expect(page.locator("#cine-label")).to_contain_text("30 frames/s")
    expect(page.locator("#view-coronal")).to_be_hidden()  # a 2D+t image: one view
    raw = pydicom.dcmread(cine_file).pixel_array.astype(float)  # (27, rows, columns)

    page.click("#cine-play")
    started = time.monotonic()
    page.wait_for_function("viewerExtra.state.frame >= 3", timeout=30_000)
    first_index, first = _shown(page)
    page.screenshot(path=str(ARTIFACTS / "cine-01-playing.png"), full_page=True)
    later = f"(viewerExtra.state.frame - {first_index} + 27) % 27 >= 5"  # it loops at 27
    page.wait_for_function(later, timeout=30_000)
    second_index, second = _shown(page)
    elapsed = time.monotonic() - started
    page.screenshot(path=str(ARTIFACTS / "cine-02-playing-later.png"), full_page=True)
    page.click("#cine-play")  # pause
    expect(page.locator("#cine-play")).to_have_text("Play")

    advanced = (second_index - first_index) % 27
    assert first_index >= 3 and advanced >= 5, (first_index, second_index)
    assert np.abs(first - second).mean() > 0.5  # two different pictures
    for index, shown in ((first_index, first), (second_index, second)):
        own = _correlation(shown, raw[index])
        assert own > 0.99, (index, own)  # the file's frame of that index, windowed
        assert own > _correlation(shown, raw[(index + 9) % 27])
    (item,) = ws.viewer.volumes.values()
    assert len(item.frames) == 27
    assert elapsed >= (first_index + advanced - 1) * 0.0333 * 0.9  # never above 30 frames/s

    frozen = page.evaluate("viewerExtra.state.frame")
    page.locator("#cine-frame").fill("20")  # the slider picks a frame
    expect(page.locator("#cine-label")).to_contain_text("frame 21/27")
    index, picked = _shown(page)
    assert index == 20 and frozen != 20
    assert _correlation(picked, raw[20]) > 0.99


YBR_CINE = Path("../shared/data/pydicom_testfiles_subset/examples_ybr_color.dcm")
FMRI = Path("../shared/data/dcm_qa_nih/In/20180918GE/mr_0004")


@contextmanager
def _loaded(tmp_path: Path, paths: list[Path]) -> Iterator[tuple[Workstation, Any]]:
    """A workstation over a temporary database of ``paths`` and its one series loaded."""
    if not paths or not all(p.exists() for p in paths):
        pytest.skip("../shared/data is not available")
    with Database.temporary() as db:
        db.import_path(paths)
        ws = Workstation(db, tmp_path / "settings.toml")
        (series,) = {ref.series_uid for ref in db.find(Query(Level.SERIES))}
        yield ws, ws.viewer.load(series)


def _png_pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(BytesIO(png)).convert("RGB")).astype(int)


def test_colour_cine_plays_in_colour(tmp_path: Path) -> None:
    """A 30-frame YBR_FULL_422 JPEG cine: every frame kept, FrameTime's rate, frames in colour."""
    with _loaded(tmp_path, [YBR_CINE]) as (ws, item):
        info = item.info()
        shown = [_png_pixels(ws.viewer.render(item.id, "axial", 0, None, frame=f)) for f in (0, 17)]
    assert info["colour"] and info["frames"] == 30
    assert info["cine"]["source"] == "FrameTime 33.333 ms" and info["cine"]["fps"] == 30.0
    raw = pydicom.dcmread(YBR_CINE).pixel_array  # (30, rows, columns, 3) RGB
    assert np.abs(shown[0] - raw[0]).max() <= 1  # each frame as stored
    assert np.abs(shown[1] - raw[17]).max() <= 1
    assert np.abs(shown[0] - shown[1]).mean() > 1


def test_fmri_time_points_play_as_frames(tmp_path: Path) -> None:
    """A GE fMRI series (15 slices x 10 volumes, one slice per file): ten frames to play."""
    with _loaded(tmp_path, sorted(FMRI.glob("*"))) as (ws, item):
        info = item.info()
        first = ws.viewer.render(item.id, "axial", 7, (500.0, 1000.0), frame=0)
        last = ws.viewer.render(item.id, "axial", 7, (500.0, 1000.0), frame=9)
        with pytest.raises(ProcessingError, match="frame 10 is outside"):
            ws.viewer.render(item.id, "axial", 7, None, frame=10)
    assert info["frames"] == 10 and info["shape"]["axial"] == 15
    assert info["cine"]["frames"] == 10
    assert first != last  # another time point of the same slice
