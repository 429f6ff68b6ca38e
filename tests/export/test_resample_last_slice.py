"""``export derived --resample``: the last slice survives when the new spacing divides it."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from dicomstation import processing as proc
from dicomstation.export import SourceSeries, build_derived_series, write_datasets
from tests.export.synthetic import Phantom, ct_series, phantom


@pytest.mark.parametrize(("old", "new"), [(0.8, 0.8 * 1.5), (0.8, 0.8 * 3), (0.7, 2.1)])
def test_resample_keeps_the_last_slice(old: float, new: float) -> None:
    array = np.full((10, 4, 4), 5.0, dtype=np.float32)
    array[:, 0, 0] = 0.0  # the fill value (minimum) differs from the data
    volume = hd.Volume(array, np.diag([old, 1.0, 1.0, 1.0]), "PATIENT")
    out = proc.resample(volume, [new, 1.0, 1.0])
    assert (out.spatial_shape[0] - 1) * new == pytest.approx(9 * old)
    np.testing.assert_array_equal(out.array[-1], array[-1])


def test_derived_resampled_series_has_its_last_slice(tmp_path: Path) -> None:
    base = phantom(slices=10, rows=32, columns=32)
    datasets = ct_series(Phantom(hu=base.hu, pixel_spacing=0.75, slice_spacing=0.8))
    source = SourceSeries.from_datasets(datasets)
    resampled = proc.resample(source.volume, [2.4, 0.75, 0.75])
    out = build_derived_series(source, resampled)
    assert len(out) == 4
    last = pydicom.dcmread(write_datasets(out[-1:], tmp_path)[0])
    hu = last.pixel_array * float(last.RescaleSlope) + float(last.RescaleIntercept)
    np.testing.assert_allclose(hu, base.hu[-1], atol=1.0)
