"""Viewer exports are ledger jobs (issue 11 item 4, issue 14 item 4), in Chromium.

The CT of ../shared/data is viewed, thresholded and exported from the UI as SEG
(twice: the second export gives back the same SEG, the database holds one), as a
derived (smoothed) series and as a scene bundle; each export is a job of the
ledger, listed on the Pipelines page. The bundle, reopened from the Local database
tab, restores its scene: the volume, the segmentation (the same mask), the window
and the slice. A UI started afresh on the same database lists the export jobs, and
an export job left pending in the ledger (a UI killed mid-export) is resumed from
the Pipelines page. Screenshots go to ``test-artifacts/ui-export/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dicomstation.database import Database
from dicomstation.export import ExportOptions
from dicomstation.models import Level, Query, SeriesRef
from dicomstation.pipeline import LEDGER_NAME, Ledger
from dicomstation.pipeline.ui_exports import ViewerExport, export_pipeline
from dicomstation.web import Workstation
from tests.web.browser_support import (
    artifacts,
    chromium_context,
    export_from_dialog,
    logged_in_page,
    serve_ui,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

CT = Path("../shared/data/dcmqi_ct_seg_sr/ct-3slice")
ARTIFACTS = artifacts("ui-export")


def _series(db: Database, modality: str) -> list[SeriesRef]:
    found = db.find(Query(Level.SERIES, {"Modality": modality}))
    return [r for r in found if isinstance(r, SeriesRef)]


def _view_ct(page: Any) -> None:
    from playwright.sync_api import expect

    page.click("#tab-local")
    page.locator("#local-study-table tbody tr").first.click()
    page.locator("#local-series-list .series-card", has_text="CT").locator(".view-button").click()
    expect(page.locator("#viewer-body")).to_be_visible()


def test_exports_are_ledger_jobs_and_a_bundle_reopens_its_scene(tmp_path: Path) -> None:
    from playwright.sync_api import expect

    if not CT.is_dir():
        pytest.skip("../shared/data is not available")
    with Database.temporary() as db:
        db.import_path([CT])
        ws = Workstation(db, tmp_path / "settings.toml")
        with (
            serve_ui(ws) as running,
            chromium_context((1500, 1000)) as context,
            logged_in_page(context, running.url) as page,
        ):
            _view_ct(page)
            page.click("#threshold-button")
            expect(page.locator("#seg-result")).to_contain_text("voxels")
            first = export_from_dialog(page, "SEG", **{"export-description": "Bone (UI job)"})
            again = export_from_dialog(page, "SEG", **{"export-description": "Bone (UI job)"})
            assert first == again  # the same export: the same SEG, not a second one
            assert [s.series_uid for s in _series(db, "SEG")] == [first]
            page.screenshot(path=str(ARTIFACTS / "01-seg-exported.png"), full_page=True)
            sr_and_seg = export_from_dialog(page, "SR", **{"export-description": ""}).split(", ")
            assert len(sr_and_seg) == 2 and [s.series_uid for s in _series(db, "SR")] == [
                sr_and_seg[1]
            ]

            derived = export_from_dialog(
                page, "DERIVED", **{"export-smooth": "1.5", "export-description": ""}
            )
            made = [s for s in _series(db, "CT") if s.series_uid == derived]
            assert made and made[0].description == "Gaussian smoothing, sigma 1.5 mm"

            page.select_option("#preset", "bone")
            page.locator("#slider-axial").evaluate(
                "s => { s.value = 2; s.dispatchEvent(new Event('input')); }"
            )
            axial = page.locator("#view-axial")
            axial.click(position={"x": 100, "y": 150})  # a seed: the bundle keeps it as its cursor
            seeds = page.inner_text("#seed-list")
            assert seeds.startswith("(2,"), seeds
            bundle = export_from_dialog(page, "BUNDLE", **{"export-description": ""})
            assert [s.series_uid for s in _series(db, "OT")] == [bundle]
            page.screenshot(path=str(ARTIFACTS / "02-bundle-exported.png"), full_page=True)
            source = page.evaluate("state.volume.series_uid")
            shown_mask = np.asarray(ws.viewer.get(page.evaluate("state.volume.id")).mask.array)

            page.click("#tab-pipelines")
            table = page.locator("#pipeline-table tbody")
            for kind in ("SEG", "DERIVED", "BUNDLE"):
                row = table.locator("tr", has_text=f"export {kind} of series")
                expect(row).to_have_count(1)
                expect(row).to_contain_text("1 done")
            page.screenshot(path=str(ARTIFACTS / "03-pipelines-page.png"), full_page=True)

            page.click("#tab-local")
            page.locator("#local-study-table tbody tr").first.click()
            page.locator("#local-series-list .scene-button").click()
            expect(page.locator("#status")).to_contain_text("scene restored", timeout=60_000)
            assert (page.input_value("#wl-center"), page.input_value("#wl-width")) == (
                "400",
                "1800",
            )
            assert page.input_value("#slider-axial") == "2"
            expect(page.locator("#seg-result")).to_contain_text("scene segmentation")
            expect(page.locator("#seed-list")).to_have_text(seeds)
            expect(page.locator("#view-axial")).to_have_js_property("complete", True)
            reopened = ws.viewer.get(page.evaluate("state.volume.id"))
            assert reopened.loaded.series_instance_uid == source
            assert np.array_equal(np.asarray(reopened.mask.array), shown_mask)
            page.screenshot(path=str(ARTIFACTS / "04-scene-reopened.png"), full_page=True)
        _restart_and_resume(db, tmp_path)


def _restart_and_resume(db: Database, tmp_path: Path) -> None:
    """A fresh UI on the same database: the jobs are listed; a pending export is resumed."""
    from playwright.sync_api import expect

    ct = _series(db, "CT")[0]
    export = ViewerExport(
        ct.study_uid,
        ct.series_uid,
        ("sc",),
        ExportOptions(series_description="Screenshot (resumed)"),
        "threshold",
        {"threshold": [300.0, 3000.0]},
        {"sc": {"axis": 0, "index": 1, "window": [40.0, 400.0], "overlay": False}},
    )
    pipeline = export_pipeline(export)
    with Ledger.open(db.root / LEDGER_NAME) as ledger:  # what a UI killed mid-export leaves
        ledger.ensure_job(pipeline.job_id, pipeline.name, pipeline.to_json())
        ledger.add_items(pipeline.job_id, [*pipeline.source.work], [s.name for s in pipeline.steps])
    ws = Workstation(db, tmp_path / "settings.toml")
    with (
        serve_ui(ws) as running,
        chromium_context((1500, 1000)) as context,
        logged_in_page(context, running.url) as page,
    ):
        page.click("#tab-pipelines")
        table = page.locator("#pipeline-table tbody")
        expect(table.locator("tr", has_text="export SEG of series")).to_contain_text("1 done")
        row = page.locator(f"#pipeline-{pipeline.job_id}")
        expect(row).to_contain_text("1 pending")
        row.click()
        row.locator("button.resume").click()
        expect(page.locator(f"#pipeline-{pipeline.job_id}")).to_contain_text(
            "1 done", timeout=60_000
        )
        page.screenshot(path=str(ARTIFACTS / "05-resumed-after-restart.png"), full_page=True)
    shots = [s for s in _series(db, "OT") if s.description == "Screenshot (resumed)"]
    assert len(shots) == 1


def test_an_export_of_a_non_default_loadable_is_refused(tmp_path: Path) -> None:
    """The job loads the series' default loadable: exporting another one is refused, not wrong."""
    from dicomstation.errors import ExportError
    from dicomstation.volumes import examine, load

    files = sorted(Path("../shared/data/dcm_qa_philips_enh/In/cl").glob("2001_*"))
    if not files:
        pytest.skip("../shared/data is not available")
    with Database.temporary() as db:
        db.import_path(files)
        ws = Workstation(db, tmp_path / "settings.toml")
        series = db.find(Query(Level.SERIES))[0].series_uid
        found = examine(db.series_files(series))
        assert len(found) > 1
        other = ws.viewer.add(load(found[1]), series)
        with pytest.raises(ExportError, match="is not the series' default"):
            ws.export(other.id, "sc", ExportOptions(), {"view": "axial", "index": 0})
        assert ws.jobs.all() == []  # nothing was started
