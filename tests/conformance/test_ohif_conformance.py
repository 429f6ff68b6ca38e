"""OHIF 3 (the prebuilt dist of npm ``@ohif/app``) in Debian's Chromium against our server
loaded with every set of ../shared/data.

The study list shows as many studies as our QIDO-RS answers; a CT, the MR of
dcm_qa_ts in each of its 9 transfer syntaxes, a dcmqi SEG overlay
and a US cine display (the viewport is not blank or uniform, OHIF logs no error).
Screenshots go to ``test-artifacts/conformance/``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest

from dicomstation.database import Database
from dicomstation.server import RunningServer
from dicomstation.web import Workstation
from dicomstation.web.app import login_url
from dicomstation.web.ohif import INSTALL_HINT, find_ohif
from tests.conformance.data import CT_3SLICE, DCMQI_SEG, QA_TS, every_set
from tests.web.browser_support import OPTIONS, artifacts, chromium_context, serve_ui

pytestmark = [pytest.mark.browser, pytest.mark.shared]

ARTIFACTS = artifacts("conformance")
LOAD_MS = 90_000  # OHIF's first paint on a busy 2-core machine with software GL
PANE = '[data-cy="viewport-pane"]'
OVERLAY = '[data-cy="viewport-overlay-bottom-right"]'
# Chromium asks the UI's login page for a favicon, which the UI does not have
HARMLESS = re.compile(r"favicon\.ico")
# what OHIF's notifications and viewport messages say when loading or decoding fails
SHOWN_ERROR = re.compile(r".{0,40}\b(error|failed|could not|cannot|unable to)\b.{0,60}", re.I)


@dataclass
class Station:
    db: Database
    running: RunningServer

    def qido(self, path: str) -> list[dict[str, Any]]:
        auth = {"Authorization": f"Bearer {OPTIONS.token.reveal()}"}
        answer = httpx.get(f"{self.running.url}/dicom-web{path}", headers=auth, timeout=60)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
        return list(answer.json())


@dataclass
class Viewer:
    page: Any
    errors: list[str] = field(default_factory=list)
    frames: dict[str, tuple[int, str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def open(self, station: Station, path: str, counter: str) -> None:
        self.page.goto(f"{station.running.url}/viewer/{path}")
        self.page.get_by_role("button", name="Confirm and hide").click(timeout=LOAD_MS)
        self.overlay.get_by_text(counter).wait_for(timeout=LOAD_MS)
        self.page.wait_for_load_state("networkidle", timeout=LOAD_MS)

    @property
    def overlay(self) -> Any:
        return self.page.locator(OVERLAY).first

    def pixels(self) -> np.ndarray:
        from PIL import Image

        shot = self.page.locator(PANE).first.screenshot()
        return np.asarray(Image.open(BytesIO(shot)).convert("RGB")).astype(np.int16)

    def painted(self) -> None:
        """Until the browser has painted twice (what was drawn is on screen)."""
        self.page.evaluate(
            "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
        )

    def scroll(self, steps: int = 1) -> None:
        box = self.page.locator(PANE).first.bounding_box()
        self.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        for _ in range(steps):
            self.page.mouse.wheel(0, 100)

    def assert_clean(self) -> None:
        assert not self.failures, self.failures  # every DICOMweb request answered
        assert not self.errors, self.errors  # no decode (or any other) error logged
        shown = SHOWN_ERROR.search(self.page.locator("body").inner_text())
        assert shown is None, f"OHIF shows an error: {shown.group(0) if shown else ''}"


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    if find_ohif() is None:
        pytest.skip(f"{INSTALL_HINT} (make test installs it)")
    with every_set(tmp_path_factory.mktemp("conformance")) as db:
        ws = Workstation(db, db.root / "settings.toml")
        with serve_ui(ws) as running:
            yield Station(db, running)


@pytest.fixture(scope="module")
def browser(station: Station) -> Iterator[Any]:
    with chromium_context((1400, 900)) as context:
        # the onboarding tour's overlay would take the clicks; mark it as seen, as OHIF does
        context.add_init_script("localStorage.setItem('shownTours', '[\"basicViewerTour\"]')")
        login = context.new_page()
        login.goto(login_url(station.running.url, OPTIONS))  # the token cookie, as a user gets it
        login.close()
        yield context


@pytest.fixture()
def viewer(browser: Any) -> Iterator[Viewer]:
    view = Viewer(browser.new_page())

    def console(message: Any) -> None:
        where = str(message.location.get("url", ""))
        if message.type == "error" and not HARMLESS.search(where):
            view.errors.append(f"{message.text[:300]} ({where})")

    def response(answer: Any) -> None:
        if "/dicom-web/" not in answer.url:
            return
        if answer.status >= 400:
            view.failures.append(f"{answer.status} {answer.request.method} {answer.url}")
        found = re.search(r"/instances/([0-9.]+)/frames/", answer.url)
        if found:
            view.frames[found.group(1)] = (answer.status, answer.headers.get("content-type", ""))

    view.page.on("console", console)
    view.page.on("pageerror", lambda exc: view.errors.append(f"page error: {exc}"))
    view.page.on("response", response)
    yield view
    view.page.close()


def _uids(path: Path) -> tuple[str, str, str]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def _assert_image(pixels: np.ndarray, what: str) -> None:
    grey = pixels.mean(axis=2)
    assert grey.std() > 20, f"{what}: the viewport is blank or uniform"


def _coloured(pixels: np.ndarray) -> int:
    """Pixels clearly not grey in the viewport's centre (no frame, no overlay text):
    a SEG's colour over a greyscale image."""
    height, width = pixels.shape[:2]
    centre = pixels[height // 5 : height * 4 // 5, width // 5 : width * 4 // 5]
    return int(np.count_nonzero(centre.max(axis=2) - centre.min(axis=2) > 60))


def test_study_list_shows_every_study_qido_answers(station: Station, viewer: Viewer) -> None:
    expected = len(station.qido("/studies?limit=1000"))
    assert expected > 40  # every set of ../shared/data is there
    with viewer.page.expect_response(lambda r: "/dicom-web/studies?" in r.url, timeout=LOAD_MS):
        viewer.page.goto(f"{station.running.url}/viewer/")
    counter = viewer.page.get_by_text(re.compile(rf"^1-\d+ of {expected}$"))
    counter.wait_for(timeout=LOAD_MS)
    shown = min(expected, int(counter.inner_text().split("-")[1].split()[0]))
    assert viewer.page.locator("tbody tr.cursor-pointer").count() == shown
    viewer.page.screenshot(path=str(ARTIFACTS / "01-study-list.png"))
    viewer.assert_clean()


def test_a_ct_displays(station: Station, viewer: Viewer) -> None:
    study, _series, _sop = _uids(next(CT_3SLICE.glob("*.dcm")))
    viewer.open(station, f"viewer?StudyInstanceUIDs={study}", "(1/3)")
    pixels = viewer.pixels()
    _assert_image(pixels, "CT")
    assert _coloured(pixels) < 50  # a greyscale CT: no overlay without a SEG
    viewer.page.screenshot(path=str(ARTIFACTS / "02-ct.png"))
    viewer.assert_clean()


def test_the_mr_displays_in_each_of_the_9_transfer_syntaxes(
    station: Station, viewer: Viewer
) -> None:
    files = sorted(QA_TS.glob("*.dcm"))
    syntaxes = {_uids(f)[2]: str(pydicom.dcmread(f).file_meta.TransferSyntaxUID) for f in files}
    assert len(syntaxes) == 9
    study, series, _sop = _uids(files[0])
    viewer.open(station, f"viewer?StudyInstanceUIDs={study}&SeriesInstanceUIDs={series}", "(1/9)")
    shots = []
    for position in range(1, 10):
        viewer.overlay.get_by_text(f"({position}/9)").wait_for(timeout=LOAD_MS)
        viewer.painted()
        shots.append(viewer.pixels())
        _assert_image(shots[-1], f"MR image {position}/9")
        if position == 1 or position == 9:
            viewer.page.screenshot(path=str(ARTIFACTS / f"03-mr-ts-{position}.png"))
        viewer.scroll()
    # every instance's frame was fetched and answered, each as its own transfer syntax
    assert set(viewer.frames) == set(syntaxes), (sorted(viewer.frames), sorted(syntaxes))
    assert all(status == 200 for status, _kind in viewer.frames.values()), viewer.frames
    # all 9 decode to the same pixels, so all 9 viewports look the same (the counter aside)
    for position, shot in enumerate(shots[1:], start=2):
        difference = float(np.abs(shot - shots[0]).mean())
        assert difference < 1.0, f"MR image {position}/9 differs from 1/9 by {difference:.2f}"
    viewer.assert_clean()


def test_a_dcmqi_seg_overlay_displays(station: Station, viewer: Viewer) -> None:
    study, seg_series, _sop = _uids(DCMQI_SEG)
    path = f"viewer?StudyInstanceUIDs={study}&initialSeriesInstanceUID={seg_series}"
    viewer.open(station, path, "(1/3)")
    deadline = time.monotonic() + LOAD_MS / 1000
    while True:  # the overlay is painted after the image: until it shows, or time is up
        viewer.painted()
        pixels = viewer.pixels()
        coloured = _coloured(pixels)
        if coloured > 200 or time.monotonic() > deadline:
            break
    _assert_image(pixels, f"SEG {DCMQI_SEG.name}")
    assert coloured > 200, f"no SEG overlay visible over the CT ({coloured} coloured pixels)"
    viewer.page.screenshot(path=str(ARTIFACTS / "04-seg-dcmqi-liver.png"))
    viewer.assert_clean()


def test_a_us_cine_displays_frame_by_frame(station: Station, viewer: Viewer) -> None:
    cines = station.qido("/instances?Modality=US&includefield=00280008")
    cine = next(c for c in cines if c.get("00280008", {}).get("Value", ["1"])[0] not in ("1", 1))
    frames = int(cine["00280008"]["Value"][0])
    study, series = cine["0020000D"]["Value"][0], cine["0020000E"]["Value"][0]
    path = f"viewer?StudyInstanceUIDs={study}&initialSeriesInstanceUID={series}"
    viewer.open(station, path, f"(1/{frames})")
    first = viewer.pixels()
    _assert_image(first, "US cine frame 1")
    viewer.page.screenshot(path=str(ARTIFACTS / "05-us-cine-frame-1.png"))
    viewer.scroll(3)
    viewer.overlay.get_by_text(f"(4/{frames})").wait_for(timeout=LOAD_MS)
    viewer.painted()
    fourth = viewer.pixels()
    assert float(np.abs(fourth - first).mean()) > 0.1, "frames 1 and 4 of the cine look the same"
    viewer.page.screenshot(path=str(ARTIFACTS / "05-us-cine-frame-4.png"))
    viewer.assert_clean()
