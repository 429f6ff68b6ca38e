"""QIDO-RS result attributes (issue 12, found side by side with Orthanc): the PS3.18 Table
10.6.3-3..5 attributes at every level, includefield=all limited to the level queried, one
header per result, and person names of databases written before A=I=P was kept."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.uid import generate_uid

from dicomstation.database import Database, headers
from dicomstation.server import ServerOptions, create_app, start_in_thread

pytestmark = pytest.mark.shared

CHARSET = Path("pydicom_testfiles_subset/charset_files/chrH31.dcm")
FILES = (CHARSET, Path("dcm_qa_ts/In/1.dcm"), Path("pydicom_data_subset/emri_small.dcm"))
# PS3.18 Tables 10.6.3-3 (study), -4 (series), -5 (instance), as listed in the standard
# (Specific Character Set left out: DICOM JSON is UTF-8; Retrieve URL checked elsewhere)
STUDY_TABLE = [
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "TimezoneOffsetFromUTC",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
]
SERIES_TABLE = [
    "Modality",
    "TimezoneOffsetFromUTC",
    "SeriesDescription",
    "SeriesInstanceUID",
    "SeriesNumber",
    "NumberOfSeriesRelatedInstances",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "RequestAttributesSequence",
]
INSTANCE_TABLE = [
    "SOPClassUID",
    "SOPInstanceUID",
    "TimezoneOffsetFromUTC",
    "InstanceNumber",
    "Rows",
    "Columns",
    "BitsAllocated",
    "NumberOfFrames",
]
COMPUTED = {"ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"}
COMPUTED |= {"NumberOfSeriesRelatedInstances"}


@pytest.fixture(scope="module")
def files(shared_data: Path) -> list[Path]:
    paths = [shared_data / f for f in FILES]
    if not all(p.is_file() for p in paths):
        pytest.skip("../shared/data lacks the files of this test")
    return paths


@pytest.fixture(scope="module")
def web(files: list[Path]) -> Iterator[httpx.Client]:
    with Database.temporary() as db:
        assert db.import_path(files).ok
        running = start_in_thread(create_app(db, ServerOptions(port=0)))
        try:
            with httpx.Client(base_url=f"{running.url}/dicom-web", timeout=60) as client:
                yield client
        finally:
            running.stop()


def _tag(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return f"{tag:08X}"


def _by(results: list[dict[str, Any]], keyword: str) -> dict[str, dict[str, Any]]:
    return {r[_tag(keyword)]["Value"][0]: r for r in results}


def _expect(ds: pydicom.Dataset, keywords: list[str]) -> dict[str, Any]:
    """The table attributes ``ds`` holds at its top level, as DICOM JSON."""
    out = {}
    for keyword in keywords:
        if keyword in COMPUTED or keyword not in ds or ds[keyword].is_empty:
            continue
        out[_tag(keyword)] = ds[keyword].to_json_dict(None, 0)
    return out


def _check(result: dict[str, Any], expected: dict[str, Any], where: str) -> None:
    missing = sorted(set(expected) - set(result))
    assert not missing, f"{where}: missing {missing}"
    for tag, element in expected.items():
        if element["vr"] not in ("PN", "SQ"):  # PN groups and sequences: presence only
            assert result[tag].get("Value") == element.get("Value"), (where, tag)


def test_every_table_attribute_the_instances_hold_is_returned(
    web: httpx.Client, files: list[Path]
) -> None:
    studies = _by(web.get("/studies").json(), "StudyInstanceUID")
    series = _by(web.get("/series").json(), "SeriesInstanceUID")
    instances = _by(web.get("/instances").json(), "SOPInstanceUID")
    checked = set()
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        _check(studies[ds.StudyInstanceUID], _expect(ds, STUDY_TABLE), f"study {path.name}")
        _check(series[ds.SeriesInstanceUID], _expect(ds, SERIES_TABLE), f"series {path.name}")
        expected = _expect(ds, INSTANCE_TABLE + SERIES_TABLE)
        _check(instances[ds.SOPInstanceUID], expected, f"instance {path.name}")
        checked |= set(_expect(ds, STUDY_TABLE + SERIES_TABLE + INSTANCE_TABLE))
    # the three defects of issue 12 are among what the files hold
    assert {_tag("TimezoneOffsetFromUTC"), _tag("PerformedProcedureStepStartDate")} <= checked
    assert _tag("BitsAllocated") in checked


def test_includefield_all_returns_the_attributes_of_the_level_queried(
    web: httpx.Client, files: list[Path]
) -> None:
    ds = pydicom.dcmread(files[1], stop_before_pixels=True)
    below_study = ["SOPInstanceUID", "SeriesInstanceUID", "ImageType", "Rows", "Modality"]
    below_series = ["SOPInstanceUID", "ImageType", "Rows", "BitsAllocated", "InstanceNumber"]
    study = _by(web.get("/studies?includefield=all").json(), "StudyInstanceUID")[
        ds.StudyInstanceUID
    ]
    series = _by(web.get("/series?includefield=all").json(), "SeriesInstanceUID")[
        ds.SeriesInstanceUID
    ]
    for result, below in ((study, below_study), (series, below_series)):
        assert not {k for k in below if _tag(k) in result}
        assert not [t for t in result if int(t[:4], 16) % 2], "private tags"
        assert _tag("PatientAge") in result and _tag("StudyDescription") in result
    assert _tag("Manufacturer") in series and _tag("ProtocolName") in series
    assert _tag("Manufacturer") not in study
    sop = ds.SOPInstanceUID
    (instance,) = web.get(f"/instances?SOPInstanceUID={sop}&includefield=all").json()
    assert _tag("ImageType") in instance and _tag("Rows") in instance  # the whole header


def test_one_header_parse_per_result_then_none(
    files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = headers.file_header

    def counting(path: str) -> dict[str, Any]:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(headers, "file_header", counting)
    with Database.temporary() as db:
        assert db.import_path(files).ok
        running = start_in_thread(create_app(db, ServerOptions(port=0)))
        try:
            with httpx.Client(base_url=f"{running.url}/dicom-web", timeout=60) as client:
                for path in ("/studies", "/series", "/instances?includefield=00080201"):
                    answer = client.get(path).json()  # a few tags: no whole header made
                    assert any("00080201" in r for r in answer) and not calls, path
                first = client.get("/instances?includefield=all&limit=1000").json()
                assert len(first) == len(files) and len(calls) <= len(files)
                cold = len(calls)
                for path in ("/instances?includefield=all", "/studies", "/series"):
                    assert client.get(path).status_code == 200
        finally:
            running.stop()
    assert len(calls) == cold, "cached headers were parsed again"


def _copy(source: Path, target: Path) -> Path:
    ds = pydicom.dcmread(source)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(target, enforce_file_format=True)
    return target


def test_database_with_alphabetic_only_names_gets_no_second_patient(
    files: list[Path], tmp_path: Path
) -> None:
    full = str(pydicom.dcmread(files[0], stop_before_pixels=True).PatientName)
    assert full.count("=") == 2  # the test needs all three groups
    root = tmp_path / "db"
    with Database.open(root) as db:
        assert db.import_path([files[0]]).ok
    conn = sqlite3.connect(root / "index.sqlite")
    with conn:  # as the code before the PN-group change wrote it: the alphabetic group only
        conn.execute("UPDATE patients SET patient_name = ?", (full.split("=")[0],))
    conn.close()
    with Database.open(root) as db:
        assert db.import_path([_copy(files[0], tmp_path / "second.dcm")]).ok
    conn = sqlite3.connect(root / "index.sqlite")
    rows = conn.execute("SELECT patient_id, patient_name FROM patients").fetchall()
    conn.close()
    assert rows == [("H31EXAMPLE", full)]


def test_opening_an_old_database_completes_names_from_cached_headers(
    files: list[Path], tmp_path: Path
) -> None:
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    full = str(ds.PatientName)
    root = tmp_path / "db"
    with Database.open(root) as db:
        assert db.import_path(files).ok
        db.headers_of(ds.SOPInstanceUID)  # cached, as a metadata request leaves it
    conn = sqlite3.connect(root / "index.sqlite")
    with conn:  # a version-1 database written before names kept every group
        conn.execute("UPDATE patients SET patient_name = ?", (full.split("=")[0],))
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    with Database.open(root):
        pass
    conn = sqlite3.connect(root / "index.sqlite")
    names = dict(conn.execute("SELECT patient_id, patient_name FROM patients").fetchall())
    conn.close()
    assert names["H31EXAMPLE"] == full
    # the others had no cached header: left as they were, no error
    assert names["crlab"] == full.split("=")[0]
