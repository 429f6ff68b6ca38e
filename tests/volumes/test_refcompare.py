"""Self-test of tests/volumes/refcompare.py: it passes a true match against dcm2niix's NIfTI and
fails a one-voxel shift, a flipped axis and swapped volumes (all made in code)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from dicomstation.volumes import LoadedVolume, load_series
from tests.volumes.refcompare import assert_matches_reference
from tests.volumes.synth import make_series, oblique_orientation


def _dcm2niix(folder: Path, out: Path) -> nib.Nifti1Image:
    if shutil.which("dcm2niix") is None:
        pytest.skip("dcm2niix is not installed")
    out.mkdir()
    subprocess.run(
        ["dcm2niix", "-z", "n", "-b", "n", "-f", "ref", "-o", str(out), str(folder)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return nib.load(out / "ref.nii")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedVolume, nib.Nifti1Image]:
    root = tmp_path_factory.mktemp("ref")
    make_series(root / "a", n=6, orientation=oblique_orientation(), intercept=0.0)
    return load_series([root / "a"]), _dcm2niix(root / "a", root / "nii")


def _with_array(loaded: LoadedVolume, array: np.ndarray) -> LoadedVolume:
    volume = loaded.volume.with_array(array)
    return replace(loaded, volume=volume, time_points=(volume,))


def test_true_match_passes(pair: tuple[LoadedVolume, nib.Nifti1Image]) -> None:
    assert_matches_reference(*pair)


def test_origin_one_voxel_off_fails(pair: tuple[LoadedVolume, nib.Nifti1Image]) -> None:
    loaded, ref = pair
    for axis in range(3):
        affine = loaded.affine_lps.copy()
        affine[:3, 3] += affine[:3, axis]  # moved by exactly one voxel along one axis
        volume = loaded.volume.__class__(
            loaded.volume.array, affine, "PATIENT", loaded.frame_of_reference_uid
        )
        shifted = replace(loaded, volume=volume, time_points=(volume,))
        with pytest.raises(AssertionError, match="affine differs"):
            assert_matches_reference(shifted, ref)


def test_flipped_axis_fails(pair: tuple[LoadedVolume, nib.Nifti1Image]) -> None:
    loaded, ref = pair
    for axis in range(3):
        flipped = _with_array(loaded, np.ascontiguousarray(np.flip(loaded.volume.array, axis)))
        with pytest.raises(AssertionError):
            assert_matches_reference(flipped, ref)


def test_swapped_volumes_fail(pair: tuple[LoadedVolume, nib.Nifti1Image], tmp_path: Path) -> None:
    loaded, ref = pair
    make_series(tmp_path / "b", n=6, orientation=oblique_orientation(), intercept=3.0)
    other_ref = _dcm2niix(tmp_path / "b", tmp_path / "nii")
    other = load_series([tmp_path / "b"])
    assert_matches_reference(other, other_ref)  # each matches its own reference...
    with pytest.raises(AssertionError):
        assert_matches_reference(loaded, other_ref)  # ...and not the other one's
    with pytest.raises(AssertionError):
        assert_matches_reference(other, ref)
