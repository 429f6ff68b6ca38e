"""The local database against real files: pydicom's test files, shared scanner data, synthetic."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest

from dicomstation import Database, DatabaseError, Level, NotFoundError, Query
from dicomstation.database.scanner import scan_bytes
from dicomstation.errors import InvalidDicomError
from tests.synth import write_ct_series

ROOT = Path(__file__).resolve().parents[2]


def _pydicom_readable(paths: list[Path]) -> set[str]:
    """SOP Instance UIDs that pydicom itself reads as complete instances."""
    uids = set()
    for path in paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        if all(
            k in ds
            for k in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID")
        ):
            uids.add(str(ds.SOPInstanceUID))
    return uids


def test_import_pydicom_files_reports_bad_files_and_dedupes(pydicom_files: Path) -> None:
    with Database.temporary() as db:
        report = db.import_path(pydicom_files)
        assert report.succeeded
        reasons = " ".join(report.failed.values())
        assert "README.txt: not a DICOM file" in reasons
        assert "rtplan_truncated.dcm: truncated DICOM file" in reasons
        assert "MR_truncated.dcm: truncated DICOM file" in reasons
        again = db.import_path(pydicom_files)
        assert not again.succeeded
        assert len(again.skipped) == len(report.succeeded) + len(report.skipped)
        # every indexed file is a complete file in the store
        for ref in db.find(Query(Level.IMAGE)):
            path = db.instance_path(ref.sop_instance_uid)
            assert path.is_relative_to(db.root / "files")
            assert scan_bytes(path.read_bytes(), str(path)).fields["SOPInstanceUID"] == (
                ref.sop_instance_uid
            )


def test_scanner_agrees_with_pydicom_on_shared_data(shared_data: Path) -> None:
    """The fast scanner reads the same index values as pydicom on every real file."""
    checked = 0
    keys = (
        "SOPInstanceUID",
        "SeriesInstanceUID",
        "StudyInstanceUID",
        "PatientName",
        "PatientID",
        "StudyDate",
        "Modality",
        "InstanceNumber",
        "Rows",
        "Columns",
    )
    for path in sorted(p for p in shared_data.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            ds.SOPInstanceUID  # noqa: B018
            ds.StudyInstanceUID  # noqa: B018
        except Exception:
            continue
        fields = scan_bytes(path.read_bytes(), str(path)).fields
        for key in keys:
            expected = ds.get(key)
            if expected in (None, ""):
                continue
            if key == "PatientName":
                expected = str(expected).rstrip("=")  # every group is indexed (issue 12)
            if key in ("InstanceNumber", "Rows", "Columns"):
                expected = int(float(expected))
            assert str(fields.get(key)) == str(expected), (path, key)
        checked += 1
    assert checked > 1000


def test_character_sets_are_decoded(pydicom_files: Path) -> None:
    charset_dir = Path(pydicom.data.get_charset_files("*")[0]).parent
    files = sorted(charset_dir.glob("chr*.dcm"))
    assert len(files) >= 10
    with Database.temporary() as db:
        db.import_path(files)
        names = {ref.patient_name for ref in db.find(Query(Level.STUDY))}
    checked = 0
    for path in files:
        ds = pydicom.dcmread(path)
        if "PatientName" not in ds or "SOPInstanceUID" not in ds:
            continue
        assert str(ds.PatientName).split("=")[0] in names, path.name
        checked += 1
    assert checked >= 10


def test_matching_wildcards_ranges_uid_lists_fuzzy(tmp_path: Path) -> None:
    uids = []
    for i, (name, date) in enumerate(
        [("DOE^JOHN", "20200105"), ("DOE^JANE", "20210610"), ("SMITH^ANNA", "20220101")]
    ):
        paths = write_ct_series(
            tmp_path / str(i), 2, size=8, patient_name=name, patient_id=f"P{i}", study_date=date
        )
        uids.append(pydicom.dcmread(paths[0]).StudyInstanceUID)
    with Database.temporary() as db:
        db.import_path(tmp_path)

        def names(**filters: str) -> set[str]:
            fuzzy = filters.pop("fuzzy", "") == "1"
            return {r.patient_name for r in db.find(Query(Level.STUDY, filters, fuzzy=fuzzy))}

        assert names(PatientName="doe^*") == {"DOE^JOHN", "DOE^JANE"}
        assert names(PatientName="DOE^J?NE") == {"DOE^JANE"}
        assert names(StudyDate="20200101-20211231") == {"DOE^JOHN", "DOE^JANE"}
        assert names(StudyDate="20210101-") == {"DOE^JANE", "SMITH^ANNA"}
        assert names(StudyDate="-20200105") == {"DOE^JOHN"}
        assert names(StudyInstanceUID=f"{uids[0]}\\{uids[2]}") == {"DOE^JOHN", "SMITH^ANNA"}
        assert names(PatientName="ann", fuzzy="1") == {"SMITH^ANNA"}
        assert names(ModalitiesInStudy="CT\\MR") == {"DOE^JOHN", "DOE^JANE", "SMITH^ANNA"}
        assert names(ModalitiesInStudy="MR") == set()
        page = db.find(Query(Level.STUDY, limit=2, offset=2))
        assert len(page) == 1
        with pytest.raises(DatabaseError, match="cannot match on 'Foo'"):
            db.find(Query(Level.STUDY, {"Foo": "x"}))
        series = db.find(Query(Level.SERIES, study_uid=uids[1]))
        assert len(series) == 1 and series[0].num_instances == 2


def test_reference_import_delete_and_temporary(tmp_path: Path) -> None:
    paths = write_ct_series(tmp_path / "src", 3, size=8)
    with Database.temporary() as db:
        root = db.root
        report = db.import_path(paths, copy=False)
        assert len(report.succeeded) == 3
        series_uid = pydicom.dcmread(paths[0]).SeriesInstanceUID
        assert db.series_files(series_uid)[0].parent == paths[0].parent
        assert db.delete(series_uid) == 3
        assert all(p.exists() for p in paths), "referenced files are never deleted"
        with pytest.raises(NotFoundError, match=series_uid):
            db.series_files(series_uid)
        db.import_path(paths)  # copy
        copied = db.series_files(series_uid)
        assert db.delete(pydicom.dcmread(paths[0]).StudyInstanceUID) == 3
        assert not any(p.exists() for p in copied)
        assert db.find(Query(Level.PATIENT)) == []
    assert not root.exists()


def test_metadata_is_cached_and_has_no_bulk_data(tmp_path: Path) -> None:
    paths = write_ct_series(tmp_path, 2, size=16)
    ds = pydicom.dcmread(paths[0])
    with Database.temporary() as db:
        db.import_path(paths)
        headers = db.metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID)
        assert len(headers) == 2
        # bulk values are only markers (the DICOMweb server fills their URIs)
        assert headers[0]["7FE00010"] == {"vr": "OW", "BulkDataURI": ""}
        assert headers[0]["00100010"]["Value"][0]["Alphabetic"] == "SYNTH^CT"
        conn = sqlite3.connect(db.root / "index.sqlite")
        cached = conn.execute("SELECT COUNT(*) FROM instances WHERE header_json IS NOT NULL")
        assert cached.fetchone()[0] == 2
        conn.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Database.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "index.sqlite")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(DatabaseError, match="schema version 99"):
        Database.open(tmp_path)


def test_unsafe_uid_is_rejected(tmp_path: Path) -> None:
    paths = write_ct_series(tmp_path, 1, size=8, series_uid="../../etc")
    with pytest.raises(InvalidDicomError, match="invalid SeriesInstanceUID"):
        scan_bytes(paths[0].read_bytes(), str(paths[0]))


_KILL_SCRIPT = """
import sys
from dicomstation import Database
db = Database.open(sys.argv[1])
print("start", flush=True)
db.import_path(sys.argv[2], workers=1)
"""


def test_killed_import_leaves_no_half_indexed_instance(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "src", 400, size=64)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(tmp_path / "db"), str(tmp_path / "src")],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    conn = sqlite3.connect(tmp_path / "db" / "index.sqlite")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if conn.execute("SELECT COUNT(*) FROM instances").fetchone()[0] > 0:
                break
        except sqlite3.OperationalError:
            pass
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    conn.close()
    db = Database.open(tmp_path / "db")
    refs = db.find(Query(Level.IMAGE))
    assert 0 < len(refs) < 400, "the kill should land mid-import"
    for ref in refs:
        path = db.instance_path(ref.sop_instance_uid)
        assert path.stat().st_size > 8000
        scan_bytes(path.read_bytes(), str(path))  # complete and parseable
    assert not list((db.root / "incoming").iterdir()), "staging is emptied on open"
    report = db.import_path(tmp_path / "src")
    assert len(report.succeeded) + len(report.skipped) == 400
    assert len(db.find(Query(Level.IMAGE))) == 400
    db.close()


def test_open_sweeps_only_staging_of_dead_processes(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        with Database.open(tmp_path) as db:
            mine = db.staging_dir("recv")
            (mine / "a.part").write_bytes(b"x")
        live = tmp_path / "incoming" / f"recv.{sleeper.pid}.abc"
        gone = tmp_path / "incoming" / f"wado.{dead.pid}.def"
        for folder in (live, gone):
            folder.mkdir()
            (folder / "b.part").write_bytes(b"x")
        (tmp_path / "incoming" / "stray.part").write_bytes(b"x")
        with Database.open(tmp_path):
            left = sorted(p.name for p in (tmp_path / "incoming").iterdir())
        assert left == sorted([mine.name, live.name]), "running processes keep their staging"
    finally:
        sleeper.kill()
        sleeper.wait()
