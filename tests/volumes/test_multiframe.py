"""Enhanced CT/MR, cine (US), RGB/YBR, secondary capture, compressed single images (shared data)."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicomstation.volumes import LoadableKind, examine, load

pytestmark = pytest.mark.shared


def _load(path: Path):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loadables = examine([path])
        return loadables[0], load(loadables[0])


def test_ultrasound_cine_is_2d_plus_t(shared_data: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(shared_data / "deid_data_us_ct/GREYSCALE_CINE.zip") as z:
        z.extractall(tmp_path)
    (path,) = [p for p in tmp_path.rglob("*") if p.is_file()]
    ld, loaded = _load(path)
    assert ld.kind is LoadableKind.CINE and loaded.kind is LoadableKind.CINE
    assert len(loaded.time_points) == 27 and loaded.volume.array.shape[:3] == (1, 600, 800)
    assert loaded.time_attribute == "FrameTime"
    assert loaded.time_values[1] == pytest.approx(33.333, abs=1e-3)
    assert any("no patient geometry" in w for w in loaded.warnings)
    frames = pydicom.dcmread(path).pixel_array
    np.testing.assert_array_equal(
        loaded.array_4d()[:, 0], frames.reshape(loaded.array_4d()[:, 0].shape)
    )


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("deid_data_us_ct/RGB_IMAGE.dcm", (1, 768, 1024, 3)),
        ("deid_data_us_ct/ctbrain1.dcm", (1, 456, 510, 3)),
    ],
)
def test_rgb_and_ybr_jpeg_secondary_capture(
    shared_data: Path, name: str, shape: tuple[int, ...]
) -> None:
    ld, loaded = _load(shared_data / name)
    assert ld.kind is LoadableKind.IMAGE
    assert loaded.volume.array.shape == shape and loaded.volume.array.dtype == np.uint8
    assert not loaded.rescaled  # colour is never rescaled (ctbrain1 carries RescaleIntercept -1024)
    expected = pydicom.dcmread(shared_data / name).pixel_array  # pydicom converts YBR to RGB
    np.testing.assert_array_equal(loaded.volume.array[0], expected)


def test_enhanced_mr_five_transfer_syntaxes(shared_data: Path) -> None:
    root = shared_data / "pydicom_data_subset"
    names = [
        "emri_small.dcm",
        "emri_small_RLE.dcm",
        "emri_small_big_endian.dcm",
        "emri_small_jpeg_2k_lossless.dcm",
        "emri_small_jpeg_ls_lossless.dcm",
    ]
    arrays = [_load(root / n)[1].array_4d() for n in names]
    assert arrays[0].shape[0] == 10
    for name, array in zip(names[1:], arrays[1:], strict=True):
        np.testing.assert_array_equal(array, arrays[0], err_msg=name)


def test_enhanced_ct_uses_functional_groups(shared_data: Path) -> None:
    path = shared_data / "pydicom_data_subset/eCT_Supplemental.dcm"
    ld, loaded = _load(path)
    ds = pydicom.dcmread(path)
    assert ld.kind is LoadableKind.VOLUME and loaded.volume.array.shape[0] == ds.NumberOfFrames
    shared = ds.SharedFunctionalGroupsSequence[0]
    o = np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(o[:3], o[3:])
    positions = [
        np.array(f.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
        for f in ds.PerFrameFunctionalGroupsSequence
    ]
    first = min(positions, key=lambda p: float(p @ normal))  # slices go along row x column
    np.testing.assert_allclose(loaded.origin, first, atol=1e-4)
    np.testing.assert_allclose(loaded.direction[:, 0], normal, atol=1e-6)
    assert loaded.slice_sources[0].frame_number is not None


@pytest.mark.parametrize("stem", ["US1", "MR2"])
def test_j2k_lossless_equals_uncompressed(shared_data: Path, stem: str) -> None:
    root = shared_data / "pydicom_data_subset"
    plain = _load(root / f"{stem}_UNCR.dcm")[1].volume.array
    np.testing.assert_array_equal(_load(root / f"{stem}_J2KR.dcm")[1].volume.array, plain)


def test_rgb_written_as_nifti_rgb24_and_nrrd_rgb_color(shared_data: Path, tmp_path: Path) -> None:
    import nibabel as nib
    import nrrd

    from dicomstation.volumes import write_nifti, write_nrrd

    _, loaded = _load(shared_data / "deid_data_us_ct/ctbrain1.dcm")
    rgb = loaded.volume.array[0]  # (rows, columns, 3)
    img = nib.load(write_nifti(loaded, tmp_path / "c.nii.gz"))
    data = np.asanyarray(img.dataobj)  # structured RGB24, axes (column, row, slice)
    assert data.shape == (510, 456, 1)
    assert tuple(data[7, 5, 0]) == tuple(rgb[5, 7])
    arr, header = nrrd.read(str(write_nrrd(loaded, tmp_path / "c.nrrd")))
    assert header["kinds"][0] == "RGB-color" and arr.shape == (3, 510, 456, 1)
    np.testing.assert_array_equal(arr[:, 7, 5, 0], rgb[5, 7])
