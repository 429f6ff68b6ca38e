"""Issue 12: metadata advertises every bulk value the server serves, and only those;
QIDO keeps the Ideographic and Phonetic person-name groups and matches on them.

- WaveformData inside WaveformSequence had an empty BulkDataURI;
- OverlayData and private OB values were omitted though ``/bulkdata`` served them;
- a PixelData BulkDataURI was advertised for instances without pixel data;
- ``PatientName=山田*`` found nothing and the groups were dropped from results.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient

from dicomstation.database import Database
from dicomstation.server import RunningServer, ServerOptions, create_app, start_in_thread

FILES = ("waveform_ecg.dcm", "examples_overlay.dcm", "rtplan.dcm")
CHARSETS = ("chrH31.dcm", "chrX1.dcm", "chrKoreanMulti.dcm")  # Japanese, Chinese, Korean


@pytest.fixture(scope="module")
def no_pixels(pydicom_files: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CT_small with its pixel data removed (Rows, Columns... kept)."""
    ds = pydicom.dcmread(pydicom_files / "CT_small.dcm")
    del ds.PixelData
    path = tmp_path_factory.mktemp("nopixels") / "ct_no_pixels.dcm"
    ds.save_as(path)
    return path


@pytest.fixture(scope="module")
def served(pydicom_files: Path, no_pixels: Path) -> Iterator[tuple[Database, RunningServer]]:
    charset = pydicom_files.parent / "charset_files"
    with Database.temporary() as db:
        paths = [pydicom_files / n for n in FILES] + [charset / n for n in CHARSETS]
        report = db.import_path([*paths, no_pixels])
        assert report.ok, report.failed
        running = start_in_thread(create_app(db, ServerOptions(port=0)))
        try:
            yield db, running
        finally:
            running.stop()


def _metadata(running: RunningServer, path: Path) -> tuple[DICOMwebClient, dict[str, object]]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    client = DICOMwebClient(url=f"{running.url}/dicom-web")
    found = client.retrieve_instance_metadata(
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    )
    return client, found


def test_waveform_data_in_its_sequence_has_a_working_uri(
    served: tuple[Database, RunningServer], pydicom_files: Path
) -> None:
    _db, running = served
    path = pydicom_files / "waveform_ecg.dcm"
    client, metadata = _metadata(running, path)
    items = metadata["54000100"]["Value"]  # type: ignore[index]
    original = pydicom.dcmread(path).WaveformSequence
    assert len(items) == len(original)
    for item, expected in zip(items, original, strict=True):
        uri = item["54001010"]["BulkDataURI"]
        assert uri.startswith(client.base_url)
        assert client.retrieve_bulkdata(uri)[0] == expected.WaveformData


def test_overlay_and_private_ob_values_are_advertised(
    served: tuple[Database, RunningServer], pydicom_files: Path
) -> None:
    _db, running = served
    path = pydicom_files / "examples_overlay.dcm"
    client, metadata = _metadata(running, path)
    original = pydicom.dcmread(path)
    for tag in ("60003000", "00291110", "7FE00010"):
        element = metadata[tag]
        assert isinstance(element, dict) and element["BulkDataURI"].endswith(f"/bulkdata/{tag}")
    for tag in ("60003000", "00291110"):
        uri = metadata[tag]["BulkDataURI"]  # type: ignore[index]
        assert client.retrieve_bulkdata(uri)[0] == original[int(tag, 16)].value


def test_no_pixel_uri_without_pixel_data(
    served: tuple[Database, RunningServer], pydicom_files: Path, no_pixels: Path
) -> None:
    _db, running = served
    for path in (pydicom_files / "rtplan.dcm", pydicom_files / "waveform_ecg.dcm", no_pixels):
        _client, metadata = _metadata(running, path)
        assert "7FE00010" not in metadata, path.name
        assert not any(
            isinstance(v, dict) and v.get("BulkDataURI") == "" for v in metadata.values()
        )


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("山田*", "chrH31.dcm"),
        ("やまだ^たろう", "chrH31.dcm"),
        ("Yamada*", "chrH31.dcm"),
        ("王*", "chrX1.dcm"),
        ("김*", "chrKoreanMulti.dcm"),
    ],
)
def test_qido_matches_and_keeps_every_name_group(
    served: tuple[Database, RunningServer], pydicom_files: Path, query: str, name: str
) -> None:
    _db, running = served
    client = DICOMwebClient(url=f"{running.url}/dicom-web")
    found = client.search_for_studies(search_filters={"PatientName": query})
    assert len(found) == 1, query
    original = pydicom.dcmread(pydicom_files.parent / "charset_files" / name).PatientName
    shown = found[0]["00100010"]["Value"][0]
    assert shown.get("Ideographic", "") == original.ideographic
    assert shown.get("Phonetic", "") == original.phonetic
    assert shown["Alphabetic"] == original.alphabetic


def test_a_name_matching_no_group_finds_nothing(served: tuple[Database, RunningServer]) -> None:
    _db, running = served
    answer = httpx.get(f"{running.url}/dicom-web/studies", params={"PatientName": "山本*"})
    assert answer.status_code == 200
    assert answer.json() == []
