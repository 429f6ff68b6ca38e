"""OHIF 3 served by the UI at /viewer/ on the UI's own origin, over the local database.

The browser tests drive the real OHIF (installed by ``make test`` / ``dicomstation
viewer install``) in Debian's Chromium with the UI's token cookie only: OHIF shows a
CT of ../shared/data opened from the UI's "Open in OHIF", and a SEG painted with
OHIF's brush in its segmentation mode and saved with its "Export > DICOM SEG >
Save" (OHIF's own STOW-RS) arrives in our database. Screenshots go to
``test-artifacts/ohif/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dicomstation.database import Database
from dicomstation.models import Level, Query
from dicomstation.server import RunningServer
from dicomstation.web import Workstation
from dicomstation.web.app import login_url
from dicomstation.web.ohif import INSTALL_HINT, app_config, find_ohif
from dicomstation.web.ohif_mount import mount_ohif
from tests.web.browser_support import OPTIONS, artifacts, chromium_context, serve_ui

DATA = Path("../shared/data/dcmqi_ct_seg_sr/ct-3slice")
ARTIFACTS = artifacts("ohif")
LOAD_MS = 90_000  # OHIF's first paint on a busy 2-core machine with software GL


def test_without_ohif_the_viewer_path_says_how_to_install(tmp_path: Path) -> None:
    app = FastAPI()
    assert mount_ohif(app, "/dicom-web", root=tmp_path) is None
    with TestClient(app) as client:
        state = client.get("/api/ohif").json()
        assert state["installed"] is False and state["hint"] == INSTALL_HINT
        page = client.get("/viewer/viewer?StudyInstanceUIDs=1.2.3")
        assert page.status_code == 404
        assert "dicomstation viewer install" in page.text
        config = client.get("/viewer/app-config.js")
        assert config.status_code == 200 and "window.location.origin" in config.text


def test_app_config_points_at_our_own_dicomweb() -> None:
    text = app_config("/dicom-web")
    assert '"routerBasename": "/viewer"' in text
    assert 'window.location.origin + "/dicom-web"' in text
    assert "cloudfront" not in text and "http://" not in text  # nothing but this origin


# -- the real OHIF in Chromium ---------------------------------------------------------------
@pytest.fixture(scope="module")
def station() -> Iterator[tuple[Database, RunningServer, str]]:
    if not DATA.is_dir():
        pytest.skip("../shared/data is not available")
    if find_ohif() is None:
        pytest.skip(f"{INSTALL_HINT} (make test installs it)")
    with Database.temporary() as db:
        db.import_path([DATA])
        study = db.find(Query(Level.STUDY))[0].study_uid
        ws = Workstation(db, db.root / "settings.toml")
        with serve_ui(ws) as running:
            yield db, running, study


def test_ohif_is_behind_the_token(station: tuple[Database, RunningServer, str]) -> None:
    import httpx

    url = station[1].url
    for path in ("/viewer/", "/viewer/app-config.js", "/viewer/viewer?StudyInstanceUIDs=1.2"):
        assert httpx.get(url + path, timeout=30).status_code == 401, path
    auth = {"Authorization": f"Bearer {OPTIONS.token.reveal()}"}
    page = httpx.get(url + "/viewer/segmentation?StudyInstanceUIDs=1.2", headers=auth, timeout=30)
    assert page.status_code == 200 and 'window.PUBLIC_URL="/viewer/"' in page.text  # SPA route
    assert "init-service-worker" not in page.text  # no service worker caching patient data
    assert httpx.get(url + "/viewer/nothing.js", headers=auth, timeout=30).status_code == 404


@pytest.fixture()
def browser_page(station: tuple[Database, RunningServer, str]) -> Iterator[tuple[Any, list[str]]]:
    refused: list[str] = []
    with chromium_context((1400, 900)) as context:

        def watch(response: Any) -> None:
            if response.status in (401, 403):
                refused.append(f"{response.status} {response.request.method} {response.url}")

        context.on("response", watch)
        # the onboarding tour's overlay would take the clicks; mark it as seen, as OHIF does
        context.add_init_script("localStorage.setItem('shownTours', '[\"basicViewerTour\"]')")
        page = context.new_page()
        page.goto(login_url(station[1].url, OPTIONS))  # the cookie, as a user gets it
        yield page, refused


def _dismiss_notices(page: Any) -> None:
    """OHIF's investigational-use banner."""
    page.get_by_role("button", name="Confirm and hide").click(timeout=LOAD_MS)


def _viewport_image(page: Any) -> np.ndarray:
    from io import BytesIO

    from PIL import Image

    shot = page.locator('[data-cy="viewport-pane"]').first.screenshot()
    return np.asarray(Image.open(BytesIO(shot)).convert("L"))


def test_ohif_shows_a_local_study_opened_from_the_ui(
    browser_page: tuple[Any, list[str]], station: tuple[Database, RunningServer, str]
) -> None:
    from playwright.sync_api import expect

    page, refused = browser_page
    _db, _running, study = station
    page.click("#tab-local")
    row = page.locator("#local-study-table tbody tr", has_text="99000")
    link = row.locator("a.ohif-link")
    expect(link).to_have_text("Open in OHIF")
    with page.context.expect_page() as opened:
        link.click()
    ohif = opened.value
    _dismiss_notices(ohif)
    expect(ohif.locator('[data-cy="viewport-overlay-bottom-right"]')).to_contain_text(
        "(1/3)", timeout=LOAD_MS
    )
    assert f"StudyInstanceUIDs={study}" in ohif.url
    pixels = _viewport_image(ohif)
    assert pixels.std() > 20, "the viewport shows no image"  # a CT slice, not a blank canvas
    ohif.screenshot(path=str(ARTIFACTS / "01-ohif-study.png"))
    assert not refused, refused  # every OHIF request was admitted by the cookie alone


def _paint_and_save(page: Any, name: str) -> Any:
    """OHIF's segmentation mode: add a segmentation, two brush dabs, Export > DICOM SEG > Save."""
    page.get_by_text("Add segmentation").click(timeout=LOAD_MS)
    page.locator('[data-cy="Brush-btn"]').click()
    box = page.locator('[data-cy="viewport-pane"] canvas').first.bounding_box()
    x, y = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.45
    page.mouse.click(x, y)
    page.mouse.click(x + 12, y + 6)
    page.screenshot(path=str(ARTIFACTS / "02-ohif-painted.png"))
    page.locator('[data-cy="segmentation-collapsed-more-btn-Labelmap"]').click()
    page.get_by_text("Export", exact=True).hover()
    page.get_by_text("DICOM SEG", exact=True).click()
    page.get_by_placeholder("Report name").fill(name)
    with page.expect_response(
        lambda r: r.request.method == "POST" and "/dicom-web/studies" in r.url, timeout=LOAD_MS
    ) as stored:
        page.get_by_role("button", name="Save", exact=True).click()
    return stored.value


def test_a_seg_saved_in_ohif_arrives_in_the_database(
    browser_page: tuple[Any, list[str]], station: tuple[Database, RunningServer, str]
) -> None:
    page, refused = browser_page
    db, running, study = station
    page.goto(f"{running.url}/viewer/segmentation?StudyInstanceUIDs={study}")
    _dismiss_notices(page)
    response = _paint_and_save(page, "OHIF brush")
    assert response.status == 200, response.text()
    page.screenshot(path=str(ARTIFACTS / "03-ohif-seg-saved.png"))
    assert not refused, refused
    # STOW-RS answers only once the instance is on disk and indexed
    segs = [s for s in db.find(Query(Level.SERIES, study_uid=study)) if s.modality == "SEG"]
    assert len(segs) == 1 and segs[0].description == "OHIF brush"
    seg = pydicom.dcmread(db.series_files(segs[0].series_uid)[0])
    # OHIF 3.13 (dcmjs) writes a Label Map Segmentation (66.7), which highdicom cannot read yet
    assert seg.SOPClassUID in ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7")
    ct_series = next(s for s in db.find(Query(Level.SERIES, study_uid=study)) if s.modality == "CT")
    referenced = {r.SeriesInstanceUID for r in seg.ReferencedSeriesSequence}
    assert referenced == {ct_series.series_uid}
    mask = np.asarray(seg.pixel_array)
    assert 0 < int(np.count_nonzero(mask)) < mask.size  # the brush dabs, not empty, not all
