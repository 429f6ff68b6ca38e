"""An RTSTRUCT loaded as a label map is exported from the UI as a ledger job, in Chromium.

dicompyler's structure set (../shared/data/dicompyler_rt) is opened with View (its CT),
BODY is ticked and loaded as a label map, and Export SEG runs the job ``load ->
rtstruct_labelmap -> export``: the job finishes, the SEG is in the database with one
segment named BODY in BODY's ROI Display Color (as CIELab), its voxel count is the label
map's, and exporting again gives back the same SEG (the database holds one). An SR of
the same label map follows. Without the browser: the step itself (chosen ROIs, unknown
ROI or RTSTRUCT named in the error, the ledger's JSON copy of the step), and two nested
ROIs of a synthetic RTSTRUCT on ../shared/data's 3-slice CT giving a two-segment SEG with
the ROIs' names and colours. Screenshots go to ``test-artifacts/viewer/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest

from dicomstation.database import Database
from dicomstation.errors import ExportError
from dicomstation.export import ExportOptions
from dicomstation.models import Level, Query, SeriesRef
from dicomstation.pipeline import Pipeline, RunOptions
from dicomstation.pipeline.rt_labelmap import RtLabelmapStep, rtstruct_segmentation
from dicomstation.pipeline.ui_exports import ViewerExport, export_pipeline
from dicomstation.volumes import load_series
from dicomstation.web import Workstation
from tests.web.browser_support import artifacts, export_from_dialog, viewer_station

DATA = Path("../shared/data/dicompyler_rt")
CT, RTSS = DATA / "ct.0.dcm", DATA / "rtss.dcm"
ARTIFACTS = artifacts("viewer")
BODY_COLOUR = (154, 155, 100)

pytestmark = pytest.mark.timeout(300)


def _seg_series(db: Database) -> list[str]:
    found = db.find(Query(Level.SERIES, {"Modality": "SEG"}))
    return [r.series_uid for r in found if isinstance(r, SeriesRef)]


def _export(page: Any, kind: str, description: str) -> list[str]:
    """Export from the dialog; the exported series UIDs the page reports."""
    return export_from_dialog(page, kind, **{"export-description": description}).split(", ")


@pytest.fixture()
def station(tmp_path: Path) -> Iterator[tuple[Any, Workstation]]:
    with viewer_station(tmp_path, [CT, RTSS], (1500, 1150)) as station:
        yield station


@pytest.mark.browser
def test_an_rtstruct_label_map_exports_as_seg_once(station: tuple[Any, Workstation]) -> None:
    from playwright.sync_api import expect

    page, ws = station
    page.click("#tab-local")
    page.locator("#local-study-table tbody tr").first.click()
    card = page.locator("#local-series-list .series-card", has_text="RTSTRUCT")
    card.locator(".view-button").click()
    expect(page.locator("#rt-overlays input.roi")).to_have_count(10, timeout=60_000)
    page.locator("#rt-overlays label", has_text="BODY").locator("input").check()
    page.locator("#rt-overlays .labelmap-button").click()
    expect(page.locator("#seg-result")).to_contain_text("label map")
    (item,) = ws.viewer.volumes.values()
    assert item.mask is not None
    voxels = int(np.count_nonzero(item.mask.array))
    assert voxels > 1000

    (seg_uid,) = _export(page, "SEG", "BODY from RTSTRUCT")
    assert _seg_series(ws.db) == [seg_uid]
    seg = hd.seg.segread(ws.db.series_files(seg_uid)[0])
    assert int(np.count_nonzero(seg.pixel_array)) == voxels  # the label map, voxel for voxel
    (segment,) = seg.SegmentSequence  # one per chosen ROI: BODY only
    assert segment.SegmentLabel == "BODY"
    assert segment.SegmentAlgorithmType == "MANUAL"
    lab = hd.color.CIELabColor.from_rgb(*BODY_COLOUR).value
    assert tuple(segment.RecommendedDisplayCIELabValue) == tuple(lab)  # BODY's display colour
    page.screenshot(path=str(ARTIFACTS / "rt-03-label-map-exported.png"), full_page=True)

    assert _export(page, "SEG", "BODY from RTSTRUCT") == [seg_uid]  # the same export again
    assert _seg_series(ws.db) == [seg_uid]  # no second SEG
    jobs = [j for j in ws.jobs.all() if "export SEG of series" in str(j.get("title", ""))]
    assert len(jobs) == 1, ws.jobs.all()  # one ledger job, asked for twice

    sr, seg_of_sr = _export(page, "SR", "")
    assert ws.db.series_files(sr) and ws.db.series_files(seg_of_sr)


def test_the_step_reads_the_rtstruct_and_names_what_is_wrong() -> None:
    """The replay step alone: the label map of the chosen ROIs; unknown ROIs / UIDs refused."""
    if not (CT.exists() and RTSS.exists()):
        pytest.skip("../shared/data is not available")
    rt = pydicom.dcmread(RTSS)
    volume = load_series([CT]).volume
    body = next(int(r.ROINumber) for r in rt.StructureSetROISequence if r.ROIName == "BODY")
    found = rtstruct_segmentation(rt, volume, (), "RTSTRUCT x")  # all ROIs: the empty ones dropped
    assert [s.label for s in found.segments] == ["BODY"] and found.segments[0].color == BODY_COLOUR
    with pytest.raises(ExportError, match="has no ROI 999"):
        rtstruct_segmentation(rt, volume, (body, 999), "RTSTRUCT x")
    empty = next(int(r.ROINumber) for r in rt.StructureSetROISequence if r.ROIName != "BODY")
    with pytest.raises(ExportError, match="none of its chosen ROIs"):
        rtstruct_segmentation(rt, volume, (empty,), "RTSTRUCT x")
    with Database.temporary() as db:
        db.import_path([CT, RTSS])
        ct = pydicom.dcmread(CT, stop_before_pixels=True)

        def pipeline_of(rt_uid: str) -> Pipeline:
            params = {"rtstruct_uid": rt_uid, "rois": [body]}
            export = ViewerExport(
                str(ct.StudyInstanceUID),
                str(ct.SeriesInstanceUID),
                ("seg",),
                ExportOptions(series_description="BODY"),
                RtLabelmapStep.kind,
                params,
            )
            return export_pipeline(export)

        pipeline = Pipeline.from_json(pipeline_of(str(rt.SOPInstanceUID)).to_json())  # ledger copy
        assert pipeline.steps[1] == RtLabelmapStep("segment", str(rt.SOPInstanceUID), (body,))
        assert pipeline.run(RunOptions(database=db.root)).ok
        (seg_uid,) = _seg_series(db)
        seg = hd.seg.segread(db.series_files(seg_uid)[0])
        expected = int(np.count_nonzero(found.labels.array))
        assert int(np.count_nonzero(seg.pixel_array)) == expected
        report = pipeline_of("1.2.826.0.1.999").run(RunOptions(database=db.root))
        (message,) = report.failed.values()
        assert "no RTSTRUCT instance 1.2.826.0.1.999" in message
        assert _seg_series(db) == [seg_uid]  # nothing half-written


CT3 = Path("../shared/data/dcmqi_ct_seg_sr/ct-3slice")


def test_several_rois_make_one_segment_each(tmp_path: Path) -> None:
    """Two nested ROIs: two segments with their names and colours; the union is kept."""
    from tests.web.test_viewer_rt import _square_rtstruct

    ct_files = sorted(p for p in CT3.glob("*") if p.is_file()) if CT3.exists() else []
    if not ct_files:
        pytest.skip("../shared/data is not available")
    rt = pydicom.dcmread(_square_rtstruct(ct_files, 30.0, tmp_path / "outer.dcm"))
    inner = pydicom.dcmread(_square_rtstruct(ct_files, 10.0, tmp_path / "inner.dcm"))
    roi, contours = inner.StructureSetROISequence[0], inner.ROIContourSequence[0]
    roi.ROINumber, roi.ROIName = 2, "core"
    contours.ReferencedROINumber, contours.ROIDisplayColor = 2, [255, 0, 255]
    rt.StructureSetROISequence.append(roi)
    rt.ROIContourSequence.append(contours)
    rt.save_as(tmp_path / "two.dcm")
    with Database.temporary() as db:
        db.import_path([*ct_files, tmp_path / "two.dcm"])
        ct = pydicom.dcmread(ct_files[0], stop_before_pixels=True)
        export = ViewerExport(
            str(ct.StudyInstanceUID),
            str(ct.SeriesInstanceUID),
            ("seg",),
            ExportOptions(series_description="two ROIs"),
            RtLabelmapStep.kind,
            {"rtstruct_uid": str(rt.SOPInstanceUID), "rois": [1, 2]},
        )
        assert export_pipeline(export).run(RunOptions(database=db.root)).ok
        (seg_uid,) = _seg_series(db)
        seg = hd.seg.segread(db.series_files(seg_uid)[0])
        labels = [
            (s.SegmentLabel, tuple(s.RecommendedDisplayCIELabValue)) for s in seg.SegmentSequence
        ]
        assert labels == [
            ("square", tuple(hd.color.CIELabColor.from_rgb(0, 255, 0).value)),
            ("core", tuple(hd.color.CIELabColor.from_rgb(255, 0, 255).value)),
        ]
        volume = load_series(ct_files).volume
        outer = pydicom.dcmread(tmp_path / "outer.dcm")
        union = int(np.count_nonzero(rtstruct_segmentation(outer, volume, (), "x").labels.array))
        core = seg.get_volume(segment_numbers=[2], combine_segments=True)
        square = seg.get_volume(segment_numbers=[1], combine_segments=True)
        sizes = int(np.count_nonzero(square.array)), int(np.count_nonzero(core.array))
        assert sizes[0] + sizes[1] == union and 0 < sizes[1] < sizes[0]  # the core wins inside
