"""Geometry, splitting and rescaling on synthetic series; SimpleITK as the independent reader."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813

from dicomstation.errors import GeometryWarning
from dicomstation.volumes import LoadableKind, examine, load, load_series
from tests.volumes.synth import AXIAL, expected_array, make_series, oblique_orientation


def _sitk_read(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def _quiet_load(files: list[Path], **kwargs: bool):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_series(files, **kwargs)
    return loaded, [str(w.message) for w in caught if w.category is GeometryWarning]


@pytest.mark.parametrize(
    "orientation", [AXIAL, oblique_orientation(), oblique_orientation(-35, 50)]
)
def test_matches_simpleitk(tmp_path: Path, orientation: tuple[float, ...]) -> None:
    files = make_series(tmp_path, orientation=orientation)
    loaded, caught = _quiet_load(files)
    assert caught == [] and loaded.warnings == ()
    img = _sitk_read(tmp_path)
    # SimpleITK: array (k, i, j) like ours; origin/spacing/direction in LPS (x=column).
    np.testing.assert_array_equal(loaded.volume.array, sitk.GetArrayFromImage(img))
    np.testing.assert_allclose(loaded.origin, img.GetOrigin(), atol=1e-4)
    sx, sy, sz = img.GetSpacing()
    np.testing.assert_allclose(loaded.spacing, (sz, sy, sx), atol=1e-4)
    d = np.array(img.GetDirection()).reshape(3, 3)  # columns: x (column), y (row), z (slice)
    np.testing.assert_allclose(loaded.direction, d[:, ::-1], atol=1e-6)
    # and the exact values: stored + intercept, sorted along the normal despite shuffled files
    np.testing.assert_array_equal(loaded.volume.array, expected_array() - 1024)
    assert loaded.volume.array.dtype == np.int16


def test_every_voxel_lands_where_the_header_says(tmp_path: Path) -> None:
    files = make_series(tmp_path, orientation=oblique_orientation(), n=5)
    loaded = load_series(files)
    for src, k in zip(loaded.slice_sources, range(5), strict=True):
        ds = pydicom.dcmread(src.path)
        world = loaded.affine_lps @ np.array([k, 3, 4, 1.0])
        o = np.array(ds.ImageOrientationPatient, dtype=float)
        ps = [float(v) for v in ds.PixelSpacing]
        expect = (
            np.array(ds.ImagePositionPatient, dtype=float) + 3 * ps[0] * o[3:] + 4 * ps[1] * o[:3]
        )
        np.testing.assert_allclose(world[:3], expect, atol=1e-4)
        assert loaded.volume.array[k, 3, 4] == ds.pixel_array[3, 4] - 1024


def test_gantry_tilt_warns_and_corrects(tmp_path: Path) -> None:
    files = make_series(
        tmp_path, n=6, rows=20, cols=10, tilt_mm_per_slice=0.8, pixel_spacing=(0.8, 0.8)
    )
    with pytest.warns(GeometryWarning, match="tilt"):
        loaded = load_series(files)
    assert any("tilt" in w for w in loaded.warnings)
    # voxels are the files' pixels, unchanged, in normal order (what SimpleITK gives too)
    np.testing.assert_array_equal(loaded.volume.array, sitk.GetArrayFromImage(_sitk_read(tmp_path)))
    with pytest.warns(GeometryWarning, match="tilt corrected"):
        fixed = load_series(files, correct_tilt=True)
    # slice k is shifted by k*0.8 mm = k pixels along rows: row i of slice k is stored row i-k
    arr, raw = fixed.volume.array, loaded.volume.array
    for k in range(1, 6):
        np.testing.assert_allclose(arr[k, k + 2 : 18], raw[k, 2 : 18 - k], atol=1e-3)


def test_uneven_spacing_and_missing_slices_warn(tmp_path: Path) -> None:
    files = make_series(tmp_path / "a", n=5, spacing=[2.5, 2.5, 5.0, 2.5])
    with pytest.warns(GeometryWarning, match="missing slices"):
        loaded = load_series(files)
    assert loaded.spacing[0] == pytest.approx(2.5)
    files = make_series(tmp_path / "b", n=5, spacing=[2.5, 2.6, 2.4, 2.5])
    with pytest.warns(GeometryWarning, match="uneven slice spacing"):
        load_series(files)


def test_duplicate_positions_warn_and_drop(tmp_path: Path) -> None:
    files = make_series(tmp_path, n=4)
    dup = pydicom.dcmread(files[0])
    dup.SOPInstanceUID = pydicom.uid.generate_uid()
    dup.save_as(tmp_path / "dup.dcm")
    with pytest.warns(GeometryWarning, match="duplicate"):
        loaded = load_series([*files, tmp_path / "dup.dcm"])
    assert loaded.volume.array.shape[0] == 4


def test_mixed_sizes_and_orientations_are_split(tmp_path: Path) -> None:
    uid = pydicom.uid.generate_uid()
    a = make_series(tmp_path, n=6, series_uid=uid, prefix="a")
    b = make_series(tmp_path, n=3, rows=8, series_uid=uid, prefix="b")
    c = make_series(tmp_path, n=4, orientation=oblique_orientation(), series_uid=uid, prefix="c")
    loadables = examine([*a, *b, *c])
    assert sorted(len(ld.frames) for ld in loadables) == [3, 4, 6]
    assert loadables[0].frames and len(loadables[0].frames) == 6  # the biggest first
    assert all("mixes 3 image sizes/orientations" in " ".join(ld.warnings) for ld in loadables)
    assert {ld.kind for ld in loadables} == {LoadableKind.VOLUME}
    with pytest.warns(GeometryWarning, match="mixes"):
        assert load(loadables[2]).volume.array.shape[0] in (3, 4)


def test_echoes_split_and_4d_by_temporal_position(tmp_path: Path) -> None:
    uid = pydicom.uid.generate_uid()
    files = []
    for echo in (1, 2):
        files += make_series(
            tmp_path, n=5, series_uid=uid, prefix=f"e{echo}", extra={"EchoNumbers": echo}
        )
    loadables = examine(files)
    assert [("echo 1" in ld.reason, "echo 2" in ld.reason) for ld in loadables].count(
        (True, False)
    ) == 1
    assert len(loadables) == 2 and all(len(ld.frames) == 5 for ld in loadables)
    files = []
    for t in (3, 1, 2):
        files += make_series(
            tmp_path / "t",
            n=5,
            series_uid=uid,
            prefix=f"t{t}",
            extra={"TemporalPositionIdentifier": t},
        )
    series, *singles = examine(files)
    assert series.kind is LoadableKind.TIME_SERIES
    # like Slicer, each time point is also offered alone, with a low confidence
    assert [ld.kind for ld in singles] == [LoadableKind.VOLUME] * 3
    assert all(len(ld.frames) == 5 and ld.confidence < series.confidence for ld in singles)
    assert "TemporalPositionIdentifier = 2" in singles[1].reason
    assert series.time_attribute == "TemporalPositionIdentifier"
    loaded = load(series)
    assert loaded.is_4d and loaded.time_values == (1.0, 2.0, 3.0)
    assert loaded.array_4d().shape == (3, 5, 12, 10)
    for t, row in enumerate(loaded.sources):
        tags = {pydicom.dcmread(s.path).TemporalPositionIdentifier for s in row}
        assert tags == {t + 1}


def test_float_rescale(tmp_path: Path) -> None:
    files = make_series(tmp_path, n=3, slope=0.5, intercept=1.25)
    loaded = load_series(files)
    assert loaded.rescaled and loaded.volume.array.dtype == np.float32
    np.testing.assert_allclose(loaded.volume.array, expected_array(3) * 0.5 + 1.25)


def test_intercept_that_overflows_int16_widens(tmp_path: Path) -> None:
    files = make_series(tmp_path, n=3, intercept=70000)
    loaded = load_series(files)
    assert loaded.volume.array.dtype == np.int32
    np.testing.assert_array_equal(loaded.volume.array, expected_array(3) + 70000)


def test_folder_input_and_ambiguous_choice_is_warned(tmp_path: Path) -> None:
    uid = pydicom.uid.generate_uid()
    for echo in (1, 2):
        make_series(
            tmp_path / "nested", n=4, series_uid=uid, prefix=f"e{echo}", extra={"EchoNumbers": echo}
        )
    assert len(examine([tmp_path])) == 2
    with pytest.warns(GeometryWarning, match="hold 2 loadables"):
        loaded = load_series([tmp_path])
    assert loaded.volume.array.shape == (4, 12, 10)
    assert any("hold 2 loadables" in w for w in loaded.warnings)


def test_forked_header_parsing_equals_threaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from dicomstation.volumes import headers

    files = make_series(tmp_path, n=70, rows=4, cols=3)
    monkeypatch.setattr(headers, "can_fork", lambda: False)
    threaded, _ = headers.read_headers(files)
    if sys.platform == "linux":
        monkeypatch.setattr(headers, "can_fork", lambda: True)
    forked, _ = headers.read_headers(files)
    assert forked == threaded and len(forked) == 70
