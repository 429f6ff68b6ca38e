"""SEG and SR of projection images (CR, DX, MG, one ultrasound frame): no patient geometry.

A chest X-ray segmentation is a SEG that references the image and has no plane
positions (highdicom writes one, ../shared/data/highdicom_seg_sr/seg_image_cr_binary.dcm);
its statistics are a planar ROI group (TID 1410) with an Area, never a Volume.
Every single-frame grey image of ../shared/data without Image Position Patient is tried.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from dicomstation import processing as proc
from dicomstation.cli.main import app
from dicomstation.database import Database
from dicomstation.errors import ExportError, LoadError
from dicomstation.export import (
    Segment,
    SourceSeries,
    build_seg,
    build_sr,
    read_seg_masks,
    read_sr_measurements,
    write_datasets,
)
from tests.export.realseries import real_series

pytestmark = pytest.mark.shared


def _projections(root: Path) -> list[SourceSeries]:
    """Single-frame grey images of the shared data without patient geometry, loaded."""
    found = []
    for series in real_series(root):
        if len(series.files) != 1:
            continue
        ds = pydicom.dcmread(series.files[0], stop_before_pixels=True)
        if "ImagePositionPatient" in ds or int(ds.get("NumberOfFrames", 1) or 1) != 1:
            continue
        if ds.get("SamplesPerPixel", 1) != 1:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                found.append(SourceSeries.from_files(list(series.files)))
            except (LoadError, ExportError):
                continue
    return found


def _dciodvfy_errors(path: Path) -> list[str]:
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, timeout=120, check=False)
    text = (run.stdout + run.stderr).decode("latin-1")
    return [line for line in text.splitlines() if line.startswith("Error")]


def _box(source: SourceSeries) -> np.ndarray:
    mask = np.zeros(source.volume.spatial_shape, dtype=bool)
    _, rows, columns = mask.shape
    mask[0, rows // 3 : rows // 2, columns // 4 : columns // 2] = True
    return mask


def test_projection_images_get_a_seg_and_an_area_report(shared_data: Path, tmp_path: Path) -> None:
    sources = _projections(shared_data)
    modalities = {s.modality for s in sources}
    assert {"CR", "DX"} <= modalities, modalities  # the shared data holds both
    validate = shutil.which("dciodvfy") is not None
    for n, source in enumerate(sources):
        mask = _box(source)
        volume = source.volume
        seg = build_seg(source, [Segment("Lung", volume.with_array(mask))])
        sr = build_sr(seg, source, proc.segment_statistics(volume, {1: volume.with_array(mask)}))
        paths = write_datasets([seg, sr], tmp_path / str(n))
        back = hd.seg.segread(paths[0])
        pixels = back.get_pixels_by_source_instance(
            [source.first.SOPInstanceUID], segment_numbers=[1]
        )
        np.testing.assert_array_equal(pixels[0, ..., 0] > 0, mask[0])
        assert "PlanePositionSequence" not in back.PerFrameFunctionalGroupsSequence[0]
        (measured,) = read_sr_measurements(pydicom.dcmread(paths[1])).values()
        assert "Volume" not in measured, (source.modality, measured)
        spacing = source.first.get("PixelSpacing") or source.first.get("ImagerPixelSpacing")
        if spacing:
            area = mask.sum() * float(spacing[0]) * float(spacing[1])
            assert measured["Area"] == pytest.approx(area, rel=1e-6)
        else:  # no pixel size at all: no physical area to report
            assert "Area" not in measured
        assert measured["Mean"] == pytest.approx(float(volume.array[mask].mean()), rel=1e-6)
        if validate:
            for path in paths:
                assert _dciodvfy_errors(path) == [], (source.modality, path.name)


def test_a_mask_off_the_image_grid_is_refused(shared_data: Path) -> None:
    dx = SourceSeries.from_files([shared_data / "highdicom_seg_sr" / "dx_image.dcm"])
    cropped = hd.Volume(_box(dx)[:, :-1, :], dx.volume.affine, coordinate_system="PATIENT")
    with pytest.raises(ExportError, match="own pixel grid"):
        build_seg(dx, [Segment("Lung", cropped)])


def test_a_projection_seg_reads_back_onto_its_image(shared_data: Path) -> None:
    dx = SourceSeries.from_files([shared_data / "highdicom_seg_sr" / "dx_image.dcm"])
    mask = _box(dx)
    seg = build_seg(dx, [Segment("Lung", dx.volume.with_array(mask))])
    (read,) = read_seg_masks(seg, dx.volume).values()
    np.testing.assert_array_equal(np.asarray(read.array), mask)
    np.testing.assert_array_equal(read.affine, dx.volume.affine)


def test_cli_segment_and_export_sr_of_a_chest_xray(shared_data: Path, tmp_path: Path) -> None:
    """A user's DX from the database: segment, then a new SR of the SEG; areas, never volumes."""
    path = shared_data / "highdicom_seg_sr" / "dx_image.dcm"
    image = pydicom.dcmread(path)
    db = tmp_path / "db"
    with Database.open(db) as opened:
        opened.import_path([path], copy=True)
    seg, sr = _cli_json("segment", image.SeriesInstanceUID, "--threshold", "100", "5000",
                        "--db", str(db))  # fmt: skip
    (stat,) = sr["statistics"]
    pixel = float(image.ImagerPixelSpacing[0]) * float(image.ImagerPixelSpacing[1])
    assert stat["area_mm2"] == pytest.approx(stat["voxel_count"] * pixel)
    (again,) = _cli_json("export", "sr", seg["series_uid"], "--db", str(db))
    assert again["statistics"][0]["area_mm2"] == pytest.approx(stat["area_mm2"])
    table = CliRunner().invoke(app, ["export", "sr", seg["series_uid"], "--db", str(db)])
    assert table.exit_code == 0, table.output
    assert "Area (mm²)" in table.stdout and "Volume (mL)" not in table.stdout


def _cli_json(*args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    parsed: list[dict[str, Any]] = json.loads(result.stdout)
    return parsed
