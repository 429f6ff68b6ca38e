"""NIfTI/NRRD writers (LPS->RAS) checked by independent readers; the ``load`` command."""

from __future__ import annotations

import warnings
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
from typer.testing import CliRunner

from dicomstation.cli.main import app
from dicomstation.volumes import examine, load, load_series, write_nifti, write_nrrd
from tests.volumes.synth import make_series, oblique_orientation


@pytest.fixture()
def oblique(tmp_path: Path) -> Path:
    make_series(tmp_path / "series", n=6, orientation=oblique_orientation())
    return tmp_path / "series"


def _world_lps(affine: np.ndarray, index: tuple[int, int, int]) -> np.ndarray:
    return (affine @ np.array([*index, 1.0]))[:3]


def test_nifti_round_trip_and_simpleitk_agrees(oblique: Path, tmp_path: Path) -> None:
    loaded = load_series(sorted(oblique.iterdir()))
    out = write_nifti(loaded, tmp_path / "v.nii.gz")
    img = nib.load(out)
    data = np.asanyarray(img.dataobj)
    # file axes are (column, row, slice); RAS world = flip x,y of LPS
    k, i, j = 4, 7, 3
    assert data[j, i, k] == loaded.volume.array[k, i, j]
    ras = (img.affine @ np.array([j, i, k, 1.0]))[:3]
    np.testing.assert_allclose(
        ras * [-1, -1, 1], _world_lps(loaded.affine_lps, (k, i, j)), atol=1e-4
    )
    # SimpleITK reads NIfTI into LPS: same origin/direction/voxels as the DICOM reader
    s = sitk.ReadImage(str(out))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(s), loaded.volume.array)
    np.testing.assert_allclose(s.GetOrigin(), loaded.origin, atol=1e-4)
    d = np.array(s.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(d[:, ::-1], loaded.direction, atol=1e-5)


def test_nrrd_is_lps(oblique: Path, tmp_path: Path) -> None:
    loaded = load_series(sorted(oblique.iterdir()))
    out = write_nrrd(loaded, tmp_path / "v.nrrd")
    data, header = nrrd.read(str(out))
    assert header["space"] == "left-posterior-superior"
    k, i, j = 2, 5, 1
    assert data[j, i, k] == loaded.volume.array[k, i, j]
    world = header["space origin"] + np.array([j, i, k]) @ header["space directions"]
    np.testing.assert_allclose(world, _world_lps(loaded.affine_lps, (k, i, j)), atol=1e-6)
    s = sitk.ReadImage(str(out))
    np.testing.assert_allclose(s.GetOrigin(), loaded.origin, atol=1e-4)


def test_4d_nifti_and_nrrd(tmp_path: Path) -> None:
    files = []
    for t in (1, 2, 3):
        files += make_series(
            tmp_path / "s",
            n=4,
            prefix=f"t{t}",
            series_uid="1.2.3.4",
            extra={"TemporalPositionIdentifier": t},
        )
    ld = examine(files)[0]
    loaded = load(ld)
    img = nib.load(write_nifti(loaded, tmp_path / "v.nii"))
    assert img.shape == (10, 12, 4, 3)
    np.testing.assert_array_equal(np.asanyarray(img.dataobj)[..., 2].T, loaded.time_points[2].array)
    data, header = nrrd.read(str(write_nrrd(loaded, tmp_path / "v.nrrd")))
    assert data.shape == (10, 12, 4, 3) and header["kinds"][-1] == "list"


def test_cli_load_from_database(tmp_path: Path, oblique: Path) -> None:
    from dicomstation.database import Database

    db_root = tmp_path / "db"
    db = Database.open(db_root)
    try:
        db.import_path([oblique])
    finally:
        db.close()
    uid = load_series(sorted(oblique.iterdir())).series_instance_uid
    out = tmp_path / "cli.nii.gz"
    result = CliRunner().invoke(app, ["load", uid, "--db", str(db_root), "--to", str(out)])
    assert result.exit_code == 0, result.output
    assert "time_points: 1" in result.output
    assert nib.load(out).shape == (10, 12, 6)
    listed = CliRunner().invoke(app, ["load", str(oblique), "--list"])
    assert listed.exit_code == 0 and "volume" in listed.output
    missing = CliRunner().invoke(app, ["load", "1.2.3.999", "--db", str(db_root)])
    assert missing.exit_code == 3 and "1.2.3.999" in missing.output


def test_cli_reports_warnings_and_errors(tmp_path: Path) -> None:
    files = make_series(tmp_path / "s", n=4, spacing=[2.5, 5.0, 2.5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = CliRunner().invoke(app, ["load", str(tmp_path / "s"), "--json"])
    assert result.exit_code == 0 and "missing slices" in result.output
    files[0].write_bytes(files[0].read_bytes()[:-10])
    bad = CliRunner().invoke(app, ["load", str(tmp_path / "s")])
    assert bad.exit_code == 3 and files[0].name in bad.output.replace("\n", "")
