"""Real scanner series against references no one here wrote (dcm2niix NIfTI), ../shared/data.

dcm2niix's conventions (row flip, axis order) are not hard-coded: the index map
between our array and the reference is derived from the two affines and must
be a signed permutation with an integer shift (tests/volumes/refcompare.py).
Philips references use dcm2niix's "precise float" scaling: reference =
display value / (RescaleSlope * private ScaleSlope 2005,100E).
"""

from __future__ import annotations

import gzip
import shutil
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from dicomstation.volumes import Loadable, LoadedVolume, examine, load
from tests.volumes.refcompare import to_reference_grid

pytestmark = pytest.mark.shared
AFFINE_TOL_MM = 1e-4


def _load_all(files: list[Path]) -> list[LoadedVolume]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # real, clean series: any geometry warning fails
        return [load(ld) for ld in examine(files)]


def _check_against(loaded: LoadedVolume, ref_path: Path, scale: float | None = 1.0) -> None:
    """Voxels and affine equal the reference; ``scale=None``: equal up to a fitted linear map."""
    ref = nib.load(ref_path)
    ours, err = to_reference_grid(loaded, ref)
    assert err.max() < AFFINE_TOL_MM, f"affine differs by {err.max()} mm"
    theirs = np.asanyarray(ref.dataobj).astype(np.float64)
    assert ours.shape == theirs.shape
    values = ours.astype(np.float64)
    if scale is None:  # dcm2niix rescales Philips phase maps its own way: fit it
        fit = np.polyfit(values.ravel(), theirs.ravel(), 1)
        assert fit[0] > 0
        values, scale = np.polyval(fit, values), 1.0
        span = float(np.ptp(theirs))
        np.testing.assert_allclose(values, theirs, atol=1e-5 * span)
        return
    np.testing.assert_allclose(values * scale, theirs, rtol=2e-6, atol=1e-4)


def _philips_scale(path: Path) -> float:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return 1.0 / (float(ds.RescaleSlope) * float(ds[0x2005, 0x100E].value))


@pytest.fixture(scope="module")
def philips(shared_data: Path) -> Path:
    return shared_data / "dcm_qa_philips_enh"


def test_philips_3d_classic_and_enhanced(philips: Path) -> None:
    (classic,) = _load_all(sorted((philips / "In/cl").glob("1901_*.dcm")))
    (enhanced,) = _load_all([philips / "In/enh/1901_WIP_3DpCASL_real.dcm"])
    assert classic.volume.array.shape == (40, 96, 96) and len(classic.sop_instance_uids) == 40
    assert len(enhanced.sop_instance_uids) == 1 and enhanced.slice_sources[5].frame_number
    _check_against(classic, philips / "Ref/1901_WIP_3DpCASL_cl.nii.gz")
    _check_against(enhanced, philips / "Ref/1901_WIP_3DpCASL_enh_real.nii.gz")
    np.testing.assert_array_equal(enhanced.volume.array, classic.volume.array)
    np.testing.assert_allclose(enhanced.affine_lps, classic.affine_lps, atol=1e-6)


def test_philips_4d_classic_and_enhanced(philips: Path, tmp_path: Path) -> None:
    files = sorted((philips / "In/cl").glob("1903_*.dcm"))
    (classic,) = _load_all(files)
    assert classic.is_4d and len(classic.time_points) == 6
    scale = _philips_scale(files[0])
    _check_against(classic, philips / "Ref/1903_WIP_SOURCE_-_3DpCASL_cl.nii.gz", scale)
    enh_file = tmp_path / "1903_enh.dcm"
    with (
        gzip.open(philips / "In/enh/1903_WIP_SOURCE_-_3DpCASL.dcm.gz") as src,
        enh_file.open("wb") as dst,
    ):
        shutil.copyfileobj(src, dst)
    (enhanced,) = _load_all([enh_file])
    _check_against(enhanced, philips / "Ref/1903_WIP_SOURCE_-_3DpCASL_enh.nii.gz", scale)
    # dcm2niix orders the enhanced and classic time points differently (its two references
    # differ too); the volumes themselves must be the same set.
    classic_vols = [v.array.tobytes() for v in classic.time_points]
    assert sorted(classic_vols) == sorted(v.array.tobytes() for v in enhanced.time_points)


def _field_map_key(ld: Loadable) -> str:
    f = ld.frames[0]
    echo = f.echo_number
    phase = any(t in ("P", "PHASE") for t in f.image_type)
    return f"e{echo}{'_ph' if phase else ''}"


def test_philips_multi_echo_magnitude_phase_split(philips: Path) -> None:
    files = sorted((philips / "In/cl").glob("2001_*.dcm"))
    loadables = examine(files)
    enh_loadables = examine([philips / "In/enh/2001_WIP_fcMRI_Field_Mapping_e2_phMag.dcm"])
    assert len(loadables) == len(enh_loadables) == 4
    echo_times = sorted({ld.frames[0].echo_time for ld in enh_loadables})
    by_key = {}
    for ld in loadables:
        by_key[_field_map_key(ld)] = load(ld)
    assert set(by_key) == {"e1", "e2", "e1_ph", "e2_ph"}
    for key, loaded in by_key.items():
        scale = None if key.endswith("_ph") else _philips_scale(loaded.slice_sources[0].path)
        _check_against(loaded, philips / f"Ref/2001_WIP_fcMRI_Field_Mapping_cl_{key}.nii.gz", scale)
    for ld in enh_loadables:
        f = ld.frames[0]
        key = f"e{echo_times.index(f.echo_time) + 1}{'_ph' if 'PHASE' in f.image_type else ''}"
        np.testing.assert_array_equal(load(ld).volume.array, by_key[key].volume.array)


@pytest.mark.parametrize("series", [4, 5, 6, 7])
def test_ge_fmri_4d(shared_data: Path, series: int) -> None:
    root = shared_data / "dcm_qa_nih"
    (loaded,) = _load_all(sorted((root / f"In/20180918GE/mr_000{series}").glob("*.dcm")))
    assert loaded.time_attribute == "InstanceNumber" and len(loaded.time_points) == 10
    _check_against(loaded, root / f"Ref/DCM2NIIX_regression_test_{series}.nii.gz")


def test_nine_transfer_syntaxes_siemens_mosaic(shared_data: Path) -> None:
    root = shared_data / "dcm_qa_ts"
    files = sorted((root / "In").glob("*.dcm"))
    assert len(files) == 9
    arrays = {}
    for f in files:
        loaded = _load_all([f])[0]  # a Siemens mosaic: 35 tiles of 64x64 in one 384x384 image
        assert loaded.volume.array.shape == (35, 64, 64)
        _check_against(loaded, root / "Ref" / f.name.replace(".dcm", ".nii.gz"))
        arrays[f.name] = loaded.volume.array
    first = arrays.pop("1.dcm")
    for name, array in arrays.items():
        np.testing.assert_array_equal(array, first, err_msg=name)


@pytest.mark.parametrize(("series", "ref"), [(3, "AP_3"), (4, "PA_4"), (5, "RL_5"), (6, "LR_6")])
def test_siemens_mosaic_4d(shared_data: Path, series: int, ref: str) -> None:
    root = shared_data / "dcm_qa_nih"
    best = examine(sorted((root / f"In/20180918Si/mr_000{series}").glob("*.dcm")))[0]
    loaded = load(best)
    assert loaded.warnings == () and loaded.time_attribute == "AcquisitionNumber"
    _check_against(loaded, root / f"Ref/EPI_PE={ref}.nii.gz")


def test_philips_oblique_sagittal_mprage_matches_simpleitk(philips: Path, tmp_path: Path) -> None:
    import SimpleITK as sitk  # noqa: N813

    for gz in (philips / "In/cl_mprage_1301_no_ref").glob("*.dcm.gz"):
        with gzip.open(gz) as src, (tmp_path / gz.name.removesuffix(".gz")).open("wb") as dst:
            shutil.copyfileobj(src, dst)
    (loaded,) = _load_all(sorted(tmp_path.glob("*.dcm")))
    assert loaded.volume.array.shape == (170, 256, 256)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path)))
    img = reader.Execute()
    # SimpleITK applies the rescale in float; our values are the same numbers
    np.testing.assert_allclose(loaded.volume.array, sitk.GetArrayFromImage(img), rtol=1e-6)
    np.testing.assert_allclose(loaded.origin, img.GetOrigin(), atol=AFFINE_TOL_MM)
    sx, sy, sz = img.GetSpacing()
    np.testing.assert_allclose(loaded.spacing, (sz, sy, sx), atol=AFFINE_TOL_MM)
    direction = np.array(img.GetDirection()).reshape(3, 3)[:, ::-1]
    np.testing.assert_allclose(loaded.direction, direction, atol=1e-6)


def test_legacy_converted_enhanced_ct_and_dcmqi_nrrd_geometry(
    shared_data: Path, tmp_path: Path
) -> None:
    import nrrd

    from dicomstation.volumes import write_nrrd

    root = shared_data / "dcmqi_ct_seg_sr/tiny_23x38x3"
    (classic,) = _load_all(sorted((root / "image").glob("*.dcm")))
    (enhanced,) = _load_all([root / "multiframe/mf.dcm"])
    np.testing.assert_array_equal(enhanced.volume.array, classic.volume.array)
    np.testing.assert_allclose(enhanced.affine_lps, classic.affine_lps, atol=1e-6)
    # dcmqi's label map of this CT (written by dcmqi/ITK): same grid as our NRRD
    _, theirs = nrrd.read(str(root / "nrrd/label.nrrd"))
    _, ours = nrrd.read(str(write_nrrd(classic, tmp_path / "ct.nrrd")))
    assert ours["sizes"].tolist() == theirs["sizes"].tolist() == [23, 38, 3]
    np.testing.assert_allclose(
        ours["space directions"], theirs["space directions"], atol=AFFINE_TOL_MM
    )
    np.testing.assert_allclose(ours["space origin"], theirs["space origin"], atol=AFFINE_TOL_MM)
