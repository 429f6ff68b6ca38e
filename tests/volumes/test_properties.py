"""Property: for any orientation, spacing and file order, every voxel sits where its header says."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pydicom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dicomstation.volumes import load_series
from tests.volumes.synth import make_series, oblique_orientation

angles = st.floats(min_value=-170, max_value=170, allow_nan=False)
spacings = st.floats(min_value=0.3, max_value=6.0, allow_nan=False)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    a=angles,
    b=angles,
    n=st.integers(min_value=2, max_value=6),
    step=spacings,
    ps=st.tuples(spacings, spacings),
    origin=st.tuples(*[st.floats(min_value=-500, max_value=500, allow_nan=False)] * 3),
)
def test_voxel_world_positions_match_headers(
    a: float, b: float, n: int, step: float, ps: tuple[float, float], origin: tuple[float, ...]
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="dsvol_"))
    try:
        files = make_series(
            folder,
            n=n,
            rows=6,
            cols=5,
            orientation=oblique_orientation(a, b),
            spacing=[step] * (n - 1),
            pixel_spacing=ps,
            origin=origin,
        )
        loaded = load_series(files)
        assert loaded.warnings == ()
        assert loaded.volume.array.shape == (n, 6, 5)
        for k, src in enumerate(loaded.slice_sources):
            ds = pydicom.dcmread(src.path)
            o = np.array(ds.ImageOrientationPatient, dtype=float)
            spacing = [float(v) for v in ds.PixelSpacing]
            for i, j in ((0, 0), (5, 4), (2, 3)):
                expect = (
                    np.array(ds.ImagePositionPatient, dtype=float)
                    + i * spacing[0] * o[3:]
                    + j * spacing[1] * o[:3]
                )
                world = (loaded.affine_lps @ np.array([k, i, j, 1.0]))[:3]
                np.testing.assert_allclose(world, expect, atol=1e-4)
                assert loaded.volume.array[k, i, j] == int(ds.pixel_array[i, j]) - 1024
    finally:
        shutil.rmtree(folder)
