"""Exports of series whose headers carry real scanners' defects (tests/export/mr_defects)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicomstation import processing as proc
from dicomstation.errors import GeometryWarning
from dicomstation.export import (
    Segment,
    SourceSeries,
    build_derived_series,
    build_parametric_map,
    build_seg,
    write_datasets,
)
from tests.export.conftest import dciodvfy_errors
from tests.export.mr_defects import defective_mr_series


@pytest.fixture(scope="module")
def mr(tmp_path_factory: pytest.TempPathFactory) -> SourceSeries:
    files = defective_mr_series(tmp_path_factory.mktemp("mr"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeometryWarning)  # 1e-8 differences are not a problem
        return SourceSeries.from_files(files)


def _private_anywhere(ds: pydicom.Dataset) -> list[str]:
    found = []
    for element in ds.iterall():
        if element.tag.is_private:
            found.append(str(element.tag))
    return found


def test_rounded_orientation_strings_export_as_seg_and_parametric_map(
    mr: SourceSeries, tmp_path: Path
) -> None:
    strings = {tuple(ds.ImageOrientationPatient) for ds in mr.datasets}
    assert len(strings) == 1  # snapped to one orientation for highdicom
    mask = proc.threshold(mr.volume, 100, 5000)
    seg = build_seg(mr, [Segment("Spheres", mask)])
    pm = build_parametric_map(mr, proc.gaussian_smooth(mr.volume, 1.0))
    for path in write_datasets([seg, pm], tmp_path):
        assert dciodvfy_errors(path) == [], path
    orientation = np.asarray(
        seg.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient,
        dtype=float,
    )
    assert orientation[1] == pytest.approx(0.00387589, abs=1e-7)


def test_derived_series_copies_attributes_only_under_their_conditions(
    mr: SourceSeries, tmp_path: Path
) -> None:
    out = build_derived_series(mr, proc.gaussian_smooth(mr.volume, 1.0))
    paths = write_datasets(out[:2], tmp_path)
    for path in paths:
        assert dciodvfy_errors(path) == [], path
    first = pydicom.dcmread(paths[0])
    assert "InversionTime" not in first and "TriggerTime" not in first
    assert first["LongitudinalTemporalInformationModified"].VR == "CS"
    assert first.AnatomicRegionSequence[0].CodeValue == "T-D3000"
    assert _private_anywhere(first) == []
    assert first.EchoTime == mr.first.EchoTime  # unconditional attributes still copied


def test_type_2c_attributes_kept_when_their_condition_holds(tmp_path: Path) -> None:
    files = defective_mr_series(tmp_path / "in", slices=3)
    for path in files:
        ds = pydicom.dcmread(path)
        ds.ScanningSequence, ds.InversionTime = ["SE", "IR"], 800
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.save_as(path)
    source = SourceSeries.from_files(files)
    (first, *_) = build_derived_series(source, source.volume)
    assert float(first.InversionTime) == 800.0
    assert "TriggerTime" not in first
