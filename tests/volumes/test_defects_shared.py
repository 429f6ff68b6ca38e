"""The loader defects of tests/volumes/test_defects.py, on the real files of ../shared/data."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut

from dicomstation.errors import GeometryWarning
from dicomstation.volumes import load_series

pytestmark = pytest.mark.shared


def _load(*paths: Path, equidistant: bool = False):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeometryWarning)
        return load_series(list(paths), equidistant=equidistant)


def test_deflated_file(shared_data: Path) -> None:
    path = shared_data / "pydicom_testfiles_subset/image_dfl.dcm"
    loaded = _load(path)
    np.testing.assert_array_equal(loaded.volume.array[0], pydicom.dcmread(path).pixel_array)


def test_modality_lut_file(shared_data: Path) -> None:
    path = shared_data / "pydicom_data_subset/mlut_18.dcm"
    ds = pydicom.dcmread(path)
    loaded = _load(path)
    np.testing.assert_array_equal(loaded.volume.array[0], apply_modality_lut(ds.pixel_array, ds))
    assert loaded.rescaled


def test_palette_colour_file(shared_data: Path) -> None:
    path = shared_data / "pydicom_testfiles_subset/examples_palette.dcm"
    ds = pydicom.dcmread(path)
    rgb = np.asarray(apply_color_lut(ds.pixel_array, ds))
    expected = (rgb >> 8).astype(np.uint8) if rgb.dtype == np.uint16 else rgb
    loaded = _load(path)
    assert loaded.volume.array.shape == (1, *expected.shape)
    np.testing.assert_array_equal(loaded.volume.array[0], expected)


def test_binary_seg_file(shared_data: Path) -> None:
    loaded = _load(shared_data / "highdicom_seg_sr/seg_image_ct_binary.dcm")
    assert loaded.volume.array.dtype == np.uint8 and set(np.unique(loaded.volume.array)) <= {0, 1}


def test_series_with_a_gap(shared_data: Path) -> None:
    files = sorted((shared_data / "pydicom_testfiles_subset/dicomdirtests_77654033_CT2").iterdir())
    kept = _load(*files)
    z = [p[2] for p in kept.slice_positions]
    assert len(z) == kept.volume.array.shape[0] and max(np.diff(z)) > 100  # the 202 mm gap
    equal = _load(*files, equidistant=True)
    assert equal.volume.array.shape[0] > kept.volume.array.shape[0]
    steps = np.diff([(equal.affine_lps @ [k, 0, 0, 1])[2] for k in range(3)])
    assert np.allclose(steps, steps[0])
