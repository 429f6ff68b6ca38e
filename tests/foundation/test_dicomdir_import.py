"""Importing a CD: a folder with a DICOMDIR, or the DICOMDIR itself, as Slicer imports them.

Before, the DICOMDIR of every CD was a failure ("not a DICOM instance (missing
SOPClassUID...)"): a complete import exited 1 ("partly failed"), and importing the
DICOMDIR file alone imported nothing. The CDs are written here by pydicom's FileSet
(a DICOMDIR and its files under PT000000/ST000000/...) from synthetic CT slices.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.fileset import FileSet
from typer.testing import CliRunner

from dicomstation.cli.common import ExitCode
from dicomstation.cli.main import app
from dicomstation.database import Database
from dicomstation.errors import InvalidDicomError
from tests.synth import write_ct_series


def _cd(tmp_path: Path, count: int = 6) -> Path:
    """A CD's folder: DICOMDIR plus ``count`` CT slices in pydicom's layout."""
    fileset = FileSet()
    for path in write_ct_series(tmp_path / "slices", count, size=16):
        fileset.add(dcmread(path))
    fileset.write(tmp_path / "cd")
    return tmp_path / "cd"


def test_a_cd_folder_imports_and_its_dicomdir_is_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cd = _cd(tmp_path)
    monkeypatch.setenv("DICOMSTATION_CONFIG", str(tmp_path / "cfg" / "settings.toml"))
    monkeypatch.setenv("DICOMSTATION_DB", str(tmp_path / "db"))
    result = CliRunner().invoke(app, ["db", "import", str(cd), "--json"])
    assert result.exit_code == ExitCode.DONE, result.output
    answer = json.loads(result.stdout)
    assert answer["imported"] == 6 and answer["failed"] == {}
    assert list(answer["notes"]) == [str(cd / "DICOMDIR")]
    assert "DICOMDIR" in answer["notes"][str(cd / "DICOMDIR")]


def test_the_dicomdir_alone_imports_the_files_it_lists(tmp_path: Path) -> None:
    cd = _cd(tmp_path)
    with Database.open(tmp_path / "db") as db:
        report = db.import_path(cd / "DICOMDIR")
    assert len(report.succeeded) == 6 and not report.failed
    assert all(Path(p).is_relative_to(cd) and Path(p).name != "DICOMDIR" for p in report.succeeded)


def test_a_cd_mounted_in_lower_case(tmp_path: Path) -> None:
    cd = _cd(tmp_path)
    for folder, dirs, files in os.walk(cd, topdown=False):
        for name in [*files, *dirs]:
            if name != "DICOMDIR":
                os.rename(os.path.join(folder, name), os.path.join(folder, name.lower()))
    with Database.open(tmp_path / "db") as db:
        assert len(db.import_path(cd / "DICOMDIR").succeeded) == 6


def test_a_file_id_leaving_its_folder_is_refused(tmp_path: Path) -> None:
    cd = _cd(tmp_path, 2)
    ds = dcmread(cd / "DICOMDIR")
    record = next(r for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r)
    record.ReferencedFileID = ["..", "..", "etc", "passwd"]
    ds.save_as(cd / "DICOMDIR")
    with Database.open(tmp_path / "db") as db, pytest.raises(InvalidDicomError, match="leaves"):
        db.import_path(cd / "DICOMDIR")


def test_a_zipped_cd(tmp_path: Path) -> None:
    cd = _cd(tmp_path)
    archive = tmp_path / "cd.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(cd.rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(cd).as_posix())
    with Database.open(tmp_path / "db") as db:
        report = db.import_path(archive)
    assert len(report.succeeded) == 6 and not report.failed
    assert list(report.warnings) == [f"{archive}:DICOMDIR"]


def test_a_lone_dicomdir_whose_files_are_gone_is_nothing_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cd = _cd(tmp_path, 2)
    for path in cd.rglob("*"):
        if path.is_file() and path.name != "DICOMDIR":
            path.unlink()
    monkeypatch.setenv("DICOMSTATION_CONFIG", str(tmp_path / "cfg" / "settings.toml"))
    monkeypatch.setenv("DICOMSTATION_DB", str(tmp_path / "db"))
    result = CliRunner().invoke(app, ["db", "import", str(cd)])
    assert result.exit_code == ExitCode.NOTHING_DONE, result.output
    assert "note" in result.stderr and "DICOMDIR" in result.stderr
    result = CliRunner().invoke(app, ["db", "import", str(cd / "DICOMDIR")])  # its files: missing
    assert result.exit_code == ExitCode.NOTHING_DONE, result.output
    assert "cannot read" in result.stderr
