"""Our NIfTI-1 writer (volumes/nifti.py) against nibabel's: the same header bytes, the same
data bytes, for 3D, 4D, RGB, every integer/float dtype and oblique, flipped affines."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from dicomstation.volumes.nifti import write_nifti_file


def _nibabel_bytes(data: np.ndarray, affine: np.ndarray, path: Path) -> bytes:
    """What the loader wrote before (nibabel, sform and qform code 1, mm and s)."""
    image = nib.Nifti1Image(data.T, affine)
    image.header.set_xyzt_units("mm", "sec")
    image.set_sform(affine, code=1)
    image.set_qform(affine, code=1)
    nib.save(image, path)
    return path.read_bytes()


def _oblique(flip: bool) -> np.ndarray:
    a, b = np.radians(20.0), np.radians(-35.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = rx @ rz @ np.diag([0.8, 0.6, -2.5 if flip else 2.5])
    affine[:3, 3] = (-12.5, 40.25, 7.0)
    return affine


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.float32, np.float64]
)
@pytest.mark.parametrize("flip", [False, True])
def test_3d_header_and_data_equal_nibabel(tmp_path: Path, dtype: type, flip: bool) -> None:
    rng = np.random.default_rng(1)
    data = (rng.random((5, 7, 9)) * 100).astype(dtype)  # (slice, row, column) C order
    affine = _oblique(flip)
    ours = tmp_path / "ours.nii"
    write_nifti_file(ours, data, affine)
    assert ours.read_bytes() == _nibabel_bytes(data, affine, tmp_path / "theirs.nii")


def test_4d_and_gzip(tmp_path: Path) -> None:
    data = np.arange(3 * 4 * 5 * 6, dtype=np.int16).reshape(3, 4, 5, 6)  # (t, slice, row, col)
    affine = _oblique(False)
    write_nifti_file(tmp_path / "ours.nii.gz", data, affine)
    theirs = _nibabel_bytes(data, affine, tmp_path / "theirs.nii")
    assert gzip.decompress((tmp_path / "ours.nii.gz").read_bytes()) == theirs
    image = nib.load(tmp_path / "ours.nii.gz")
    assert image.shape == (6, 5, 4, 3)
    np.testing.assert_array_equal(np.asanyarray(image.dataobj).T, data)
    np.testing.assert_allclose(image.get_qform(), affine, atol=1e-5)
    np.testing.assert_allclose(image.get_sform(), affine, atol=1e-5)


def test_rgb24(tmp_path: Path) -> None:
    rgb = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])
    data = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3).view(rgb)[..., 0]
    write_nifti_file(tmp_path / "ours.nii", data, np.eye(4))
    assert (tmp_path / "ours.nii").read_bytes() == _nibabel_bytes(
        data, np.eye(4), tmp_path / "theirs.nii"
    )


def test_unsupported_dtype_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no datatype"):
        write_nifti_file(tmp_path / "x.nii", np.zeros((2, 2, 2), dtype=np.complex64), np.eye(4))
