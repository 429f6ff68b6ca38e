"""RTSTRUCT in the workstation viewer: "View" on the dicompyler structure set opens its CT with
every ROI listed (name, colour); the BODY contour is drawn on the CT in its colour; "Load as
label map" makes it the segmentation, with a voxel count matching an independent
rasterisation (Pillow's polygon fill from the raw ContourData and the CT's IPP/IOP/spacing).
Screenshots go to ``test-artifacts/viewer/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw
from pydicom.dataset import Dataset

from dicomstation.database import Database
from dicomstation.errors import NotFoundError
from dicomstation.export import ExportOptions
from dicomstation.volumes import load_series
from dicomstation.web import Workstation
from dicomstation.web.viewer_rt import rasterise
from tests.web.browser_support import artifacts, viewer_station

DATA = Path("../shared/data/dicompyler_rt")
CT, RTSS = DATA / "ct.0.dcm", DATA / "rtss.dcm"
ARTIFACTS = artifacts("viewer")
BODY_COLOUR = (154, 155, 100)


def _need_data() -> None:
    if not (CT.exists() and RTSS.exists()):
        pytest.skip("../shared/data is not available")


def _independent_body(ct: Dataset, rt: Dataset) -> tuple[np.ndarray, int]:
    """BODY on the CT slice by Pillow: even-odd fill, and the count of boundary pixels."""
    origin = np.array(ct.ImagePositionPatient, dtype=float)
    row_dir, col_dir = (
        np.array(ct.ImageOrientationPatient[:3]),
        np.array(ct.ImageOrientationPatient[3:]),
    )
    normal = np.cross(row_dir, col_dir)
    spacing = [float(v) for v in ct.PixelSpacing]  # between rows, between columns
    thickness = float(ct.get("SliceThickness", 1) or 1)
    number = next(int(r.ROINumber) for r in rt.StructureSetROISequence if r.ROIName == "BODY")
    roi = next(r for r in rt.ROIContourSequence if int(r.ReferencedROINumber) == number)
    mask = np.zeros((ct.Rows, ct.Columns), dtype=bool)
    boundary = 0
    for contour in roi.ContourSequence:
        points = np.array(contour.ContourData, dtype=float).reshape(-1, 3) - origin
        if abs(float(np.mean(points @ normal))) > thickness / 2:
            continue  # another slice
        xy = list(zip(points @ row_dir / spacing[1], points @ col_dir / spacing[0], strict=True))
        filled = Image.new("1", (ct.Columns, ct.Rows))
        ImageDraw.Draw(filled).polygon(xy, fill=1)
        edge = Image.new("1", (ct.Columns, ct.Rows))
        ImageDraw.Draw(edge).polygon(xy, outline=1)
        mask ^= np.asarray(filled, dtype=bool)
        boundary += int(np.count_nonzero(np.asarray(edge)))
    return mask, boundary


def test_contours_fill_even_odd_and_skip_other_slices() -> None:
    _need_data()
    volume = load_series([CT]).volume
    z = float(pydicom.dcmread(CT, stop_before_pixels=True).ImagePositionPatient[2])

    def square(half: float, at: float = z) -> Dataset:
        c = Dataset()
        c.ContourGeometricType = "CLOSED_PLANAR"
        corners = [(-half, -half), (half, -half), (half, half), (-half, half)]
        c.ContourData = [v for x, y in corners for v in (x, y - 250, at)]  # mid-image
        return c

    rt = Dataset()
    rt.StructureSetROISequence = [Dataset()]
    rt.StructureSetROISequence[0].ROINumber, rt.StructureSetROISequence[0].ROIName = 1, "ring"
    roi = Dataset()
    roi.ReferencedROINumber = 1
    roi.ContourSequence = [square(50.0), square(20.0), square(50.0, z + 30)]
    rt.ROIContourSequence = [roi]
    name, _colour, mask, skipped = rasterise(rt, volume)[1]
    assert name == "ring" and skipped == 1  # the contour 30 mm away is on no slice
    centre = np.asarray(volume.map_reference_to_indices(np.array([[0.0, -250.0, z]])))[0]
    k, r, c = (round(float(v)) for v in centre)
    ring_r = round(float(centre[1]) + 35 / 1.074219)
    assert not mask[k, r, c] and mask[k, ring_r, c]  # the inner square is a hole
    area = (100**2 - 40**2) / 1.074219**2
    assert abs(int(mask.sum()) - area) / area < 0.05


def test_rtstruct_without_its_image_series_says_so(tmp_path: Path) -> None:
    _need_data()
    with Database.temporary() as db:
        db.import_path([RTSS])
        ws = Workstation(db, tmp_path / "settings.toml")
        uid = str(pydicom.dcmread(RTSS, stop_before_pixels=True).SeriesInstanceUID)
        with pytest.raises(NotFoundError, match="not in the local database"):
            ws.viewer.load(uid)


@pytest.fixture()
def station(tmp_path: Path) -> Iterator[tuple[Any, Workstation]]:
    with viewer_station(tmp_path, [CT, RTSS], (1500, 1150)) as station:
        yield station


def _axial_rgb(page: Any) -> np.ndarray:
    url = page.locator("#view-axial").get_attribute("src")
    body = page.request.get(urljoin(page.url, url)).body()  # the same PNG the view shows
    return np.asarray(Image.open(BytesIO(body)).convert("RGB")).astype(int)


@pytest.mark.browser
def test_rtstruct_contours_on_its_ct_and_label_map(station: tuple[Any, Workstation]) -> None:
    from playwright.sync_api import expect

    page, ws = station
    page.click("#tab-local")
    page.locator("#local-study-table tbody tr").first.click()
    card = page.locator("#local-series-list .series-card", has_text="RTSTRUCT")
    card.locator(".view-button").click()  # an RTSTRUCT opens the CT it was drawn on
    expect(page.locator("#viewer-body")).to_be_visible(timeout=60_000)
    rois = page.locator("#rt-overlays input.roi")
    expect(rois).to_have_count(10, timeout=60_000)
    (item,) = ws.viewer.volumes.values()
    ct, rt = pydicom.dcmread(CT), pydicom.dcmread(RTSS)
    assert item.loaded.series_instance_uid == ct.SeriesInstanceUID
    expect(page.locator("#rt-overlays")).to_contain_text("Lt Lung")
    expect(page.locator("#volume-title")).to_contain_text("the image series of RTSTRUCT")
    expect(page.locator("#rt-overlays input.roi:disabled")).to_have_count(9)  # no contour here
    body = page.locator("#rt-overlays label", has_text="BODY").locator("input")
    expect(page.locator("#view-axial")).to_have_js_property("complete", True)
    before = _axial_rgb(page)
    assert np.all(before[..., 0] == before[..., 1])  # grey CT, no contour yet

    body.check()
    expect(page.locator("#view-axial")).to_have_attribute("src", re.compile("rois="))
    expect(page.locator("#view-axial")).to_have_js_property("complete", True)
    drawn = np.all(_axial_rgb(page) == BODY_COLOUR, axis=2)
    assert drawn.sum() > 500, drawn.sum()  # the BODY outline in its ROI colour
    expected, boundary = _independent_body(ct, rt)
    assert expected[drawn].mean() > 0.9  # drawn inside the body, on its edge
    page.screenshot(path=str(ARTIFACTS / "rt-01-body-contour.png"), full_page=True)

    page.locator("#rt-overlays .labelmap-button").click()
    expect(page.locator("#seg-result")).to_contain_text("label map")
    assert item.mask is not None
    ours = np.asarray(item.mask.array)[0]
    assert abs(int(ours.sum()) - int(expected.sum())) <= boundary  # conventions differ on edges
    overlap = np.logical_and(ours, expected).sum() / np.logical_or(ours, expected).sum()
    assert overlap > 0.95, overlap
    expect(page.locator("#seg-result")).to_contain_text(f"BODY {int(ours.sum())}")
    expect(page.locator("#view-axial")).to_have_js_property("complete", True)
    page.screenshot(path=str(ARTIFACTS / "rt-02-label-map.png"), full_page=True)

    # the UI's Export of this label map (a ledger job): tests/web/test_viewer_rt_export.py
    (seg_uid,) = ws.viewer.export(item.id, "SEG", ExportOptions(series_description="BODY"))
    seg = hd.seg.segread(ws.db.series_files(seg_uid)[0])
    assert int(np.count_nonzero(seg.pixel_array)) == int(ours.sum())  # the label map, as a SEG


CT3 = Path("../shared/data/dcmqi_ct_seg_sr/ct-3slice")


def _square_rtstruct(ct_files: list[Path], half_mm: float, out: Path) -> Path:
    """A minimal RTSTRUCT on the CT's frame of reference: one square ROI on every slice."""
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    slices = [pydicom.dcmread(p, stop_before_pixels=True) for p in ct_files]
    first = slices[0]
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"  # RT Structure Set Storage
    ds.SOPInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.StudyInstanceUID, ds.Modality = first.StudyInstanceUID, "RTSTRUCT"
    ds.PatientID, ds.PatientName, ds.StructureSetLabel = first.PatientID, first.PatientName, "SQ"
    frame = Dataset()
    frame.FrameOfReferenceUID = first.FrameOfReferenceUID  # no series named: placed by FoR
    ds.ReferencedFrameOfReferenceSequence = [frame]
    roi = Dataset()
    roi.ROINumber, roi.ROIName = 1, "square"
    ds.StructureSetROISequence = [roi]
    contours = []
    for s in slices:
        x0, y0, z = (float(v) for v in s.ImagePositionPatient)
        cx, cy = x0 + 256 * float(s.PixelSpacing[1]), y0 + 256 * float(s.PixelSpacing[0])
        c = Dataset()
        c.ContourGeometricType = "CLOSED_PLANAR"
        corners = [
            (-half_mm, -half_mm),
            (half_mm, -half_mm),
            (half_mm, half_mm),
            (-half_mm, half_mm),
        ]
        c.ContourData = [v for dx, dy in corners for v in (cx + dx, cy + dy, z)]
        contours.append(c)
    item = Dataset()
    item.ReferencedROINumber, item.ROIDisplayColor = 1, [0, 255, 0]
    item.ContourSequence = contours
    ds.ROIContourSequence = [item]
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = (
        ds.SOPClassUID,
        ds.SOPInstanceUID,
    )
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(out, enforce_file_format=True)
    return out


def test_contours_on_every_view_of_a_multislice_ct(tmp_path: Path) -> None:
    from dicomstation.web.viewer_rt_api import label_map, rt_outlines

    ct_files = sorted(p for p in CT3.glob("*") if p.is_file()) if CT3.exists() else []
    if not ct_files:
        pytest.skip("../shared/data is not available")
    rtss = _square_rtstruct(ct_files, 20.0, tmp_path / "square.dcm")
    with Database.temporary() as db:
        db.import_path([*ct_files, rtss])
        ws = Workstation(db, tmp_path / "settings.toml")
        ct_uid = str(pydicom.dcmread(ct_files[0], stop_before_pixels=True).SeriesInstanceUID)
        item = ws.viewer.load(ct_uid)
        (overlay,) = ws.viewer.rt.for_volume(item)  # found by its frame of reference
        roi = overlay.rois[1]
        spacing = float(pydicom.dcmread(ct_files[0], stop_before_pixels=True).PixelSpacing[0])
        area = (40.0 / spacing) ** 2
        assert abs(roi.voxels - 3 * area) / (3 * area) < 0.03  # a 40 mm square on 3 slices
        assert int(np.count_nonzero(label_map(overlay).array)) == roi.voxels
        chosen = [(overlay.series_uid, 1)]
        for view, axis in (("axial", 0), ("coronal", 1), ("sagittal", 2)):
            middle = item.display.spatial_shape[axis] // 2
            layers = rt_outlines(ws, item, chosen, axis, middle)
            png = ws.viewer.render(item.id, view, middle, (40.0, 400.0), layers=layers)
            rgb = np.asarray(Image.open(BytesIO(png)).convert("RGB")).astype(int)
            green = np.all(rgb == (0, 255, 0), axis=2)
            assert green.sum() > 20, (view, green.sum())  # the square's outline in this view
