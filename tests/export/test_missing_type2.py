"""Sources without Type 2 patient/study attributes (de-identified data, other scanners).

Every export kind must succeed and write those attributes present but empty; a
source without a Type 1 attribute (StudyInstanceUID) gets a one-line ExportError.
"""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from dicomstation.cli.main import app
from dicomstation.database import Database
from dicomstation.errors import ExportError
from dicomstation.export import SourceSeries
from tests.export.conftest import assert_valid, dciodvfy_errors
from tests.export.synthetic import ct_series, phantom, write_series

runner = CliRunner()

#: The Type 2 attributes of the Patient and General Study modules highdicom reads directly.
TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "AccessionNumber",
    "StudyID",
)


@pytest.fixture(scope="module")
def bare_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A small CT series whose instances have none of :data:`TYPE2`."""
    datasets = ct_series(phantom(slices=8, rows=32, columns=32, spheres=1))
    for ds in datasets:
        for keyword in TYPE2:
            delattr(ds, keyword)
    return write_series(datasets, tmp_path_factory.mktemp("bare"))


@pytest.fixture()
def db_path(tmp_path: Path, bare_files: list[Path]) -> Path:
    path = tmp_path / "db"
    with Database.open(path) as db:
        db.import_path(bare_files, copy=True)
    return path


def _run(*args: str) -> dict[str, object]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    parsed: list[dict[str, object]] = json.loads(result.stdout)
    return parsed[0]


def _check(db_path: Path, made: dict[str, object]) -> pydicom.Dataset:
    """Assert every object made is valid and carries TYPE2 empty; return the first."""
    uids = [str(uid) for uid in made["sop_uids"]]  # type: ignore[attr-defined]
    with Database.open(db_path) as db:
        paths = [db.instance_path(uid) for uid in uids]
    assert paths
    for path in paths:
        assert dciodvfy_errors(path) == [], path
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert {k: str(ds[k].value or "") for k in TYPE2 if k in ds} == dict.fromkeys(TYPE2, "")
    return pydicom.dcmread(paths[0], stop_before_pixels=True)


def test_every_export_kind_writes_type2_empty(db_path: Path, bare_files: list[Path]) -> None:
    before = {p: p.read_bytes() for p in bare_files}
    uid = str(pydicom.dcmread(bare_files[0]).SeriesInstanceUID)
    seg = _run("segment", uid, "--threshold", "250", "350", "--db", str(db_path))
    seg_uid = str(seg["sop_uids"][0])  # type: ignore[index]
    assert _check(db_path, seg).Modality == "SEG"
    assert _check(db_path, _run("export", "sr", seg_uid, "--db", str(db_path))).Modality == "SR"
    _check(db_path, _run("export", "sc", uid, "--seg", seg_uid, "--db", str(db_path)))
    derived = _run("export", "derived", uid, "--smooth", "1", "--db", str(db_path))
    assert _check(db_path, derived).ImageType[0] == "DERIVED"
    bundle = _run("export", "bundle", uid, "--seg", seg_uid, "--db", str(db_path))
    _check(db_path, bundle)
    assert {p: p.read_bytes() for p in bare_files} == before  # the sources are untouched


def test_in_memory_sources_are_filled_on_copies(bare_files: list[Path]) -> None:
    datasets = [pydicom.dcmread(p) for p in bare_files]
    source = SourceSeries.from_datasets(datasets)
    assert all(source.first[k].value in ("", None) for k in TYPE2)
    assert not any(k in ds for ds in datasets for k in TYPE2)  # the caller's datasets unchanged


def test_parametric_map_writes_type2_empty(bare_files: list[Path], tmp_path: Path) -> None:
    from dicomstation.export import build_parametric_map

    source = SourceSeries.from_files(bare_files)
    pm = build_parametric_map(source, source.volume, description="copy")
    (path,) = assert_valid([pm], tmp_path)
    back = pydicom.dcmread(path, stop_before_pixels=True)
    assert {k: str(back[k].value or "") for k in TYPE2 if k in back} == dict.fromkeys(TYPE2, "")


def test_missing_study_uid_is_one_clear_error(bare_files: list[Path]) -> None:
    datasets = [pydicom.dcmread(p) for p in bare_files]
    for ds in datasets:
        del ds.StudyInstanceUID
    with pytest.raises(ExportError) as caught:
        SourceSeries.from_datasets(datasets)
    message = str(caught.value)
    assert "\n" not in message and "StudyInstanceUID" in message
    assert str(datasets[0].SeriesInstanceUID) in message
    assert all("StudyInstanceUID" not in ds for ds in datasets)  # the caller's datasets unchanged
