"""Issue 12: frames and instances served with the right bytes, or refused before any byte.

- 1-bit SEG frames were sliced as len(PixelData) // frames bytes: wrong when
  rows x columns is not a multiple of 8 (a 10x10x20 highdicom SEG: 0 of 20 matched);
- big-endian frames were served unswapped, labelled little endian;
- a decode failure after the headers gave a 200 with an empty body;
- ``type="application/dicom"`` without transfer-syntax returned the stored syntax;
- frames ignored Accept (image/jpeg, application/json, another JPEG syntax: 200).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from dicomstation.database import Database
from dicomstation.nodes.multipart import boundary_of, iter_parts
from dicomstation.server import RunningServer, ServerOptions, create_app, start_in_thread

SEG_10x10x20 = "highdicom_seg_sr/seg_image_sm_control.dcm"
FILES = (
    "MR_small_bigendian.dcm",  # Explicit VR Big Endian, 16-bit signed
    "JPEG-lossy.dcm",  # 12-bit JPEG Extended that pydicom's plugins cannot decode
    "JPEG2000.dcm",  # JPEG 2000 (lossy syntax); its own SOP Instance UID
    "CT_small.dcm",  # Explicit VR Little Endian
)


@pytest.fixture(scope="module")
def served(pydicom_files: Path, shared_data: Path) -> Iterator[tuple[Database, RunningServer]]:
    with Database.temporary() as db:
        report = db.import_path([pydicom_files / n for n in FILES] + [shared_data / SEG_10x10x20])
        assert report.ok, report.failed
        running = start_in_thread(create_app(db, ServerOptions(port=0)))
        try:
            yield db, running
        finally:
            running.stop()


def _uids(db: Database, path: Path) -> tuple[str, str, str]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID


def _url(running: RunningServer, uids: tuple[str, str, str]) -> str:
    study, series, sop = uids
    return f"{running.url}/dicom-web/studies/{study}/series/{series}/instances/{sop}"


def _parts(answer: httpx.Response) -> list[bytes]:
    boundary = boundary_of(answer.headers["content-type"])
    return [part.read() for part in iter_parts([answer.content], boundary)]


def test_one_bit_seg_frames_match_pydicom(
    served: tuple[Database, RunningServer], shared_data: Path
) -> None:
    db, running = served
    path = shared_data / SEG_10x10x20
    original = pydicom.dcmread(path)
    assert (original.Rows, original.Columns, original.NumberOfFrames) == (10, 10, 20)
    study, series, sop = _uids(db, path)
    client = DICOMwebClient(url=f"{running.url}/dicom-web")
    frames = client.retrieve_instance_frames(study, series, sop, list(range(1, 21)))
    assert len(frames) == 20
    expected = original.pixel_array
    for index, frame in enumerate(frames):
        assert len(frame) == 13  # 100 bits, packed from bit 0 of the frame
        bits = np.unpackbits(np.frombuffer(frame, np.uint8), bitorder="little")[:100]
        assert np.array_equal(bits.reshape(10, 10), expected[index]), index


def test_big_endian_frames_are_little_endian(
    served: tuple[Database, RunningServer], pydicom_files: Path
) -> None:
    db, running = served
    path = pydicom_files / "MR_small_bigendian.dcm"
    study, series, sop = _uids(db, path)
    client = DICOMwebClient(url=f"{running.url}/dicom-web")
    frame = client.retrieve_instance_frames(study, series, sop, [1])[0]
    expected = pydicom.dcmread(path).pixel_array
    assert np.array_equal(np.frombuffer(frame, "<i2").reshape(expected.shape), expected)
    bulk = client.retrieve_bulkdata(f"{_url(running, (study, series, sop))}/bulkdata/7FE00010")
    assert bulk[0] == frame


def test_big_endian_instance_by_default_is_explicit_little_endian(
    served: tuple[Database, RunningServer], pydicom_files: Path
) -> None:
    db, running = served
    path = pydicom_files / "MR_small_bigendian.dcm"
    answer = httpx.get(
        _url(running, _uids(db, path)),
        headers={"Accept": 'multipart/related; type="application/dicom"'},
    )
    assert answer.status_code == 200
    ds = pydicom.dcmread(io.BytesIO(_parts(answer)[0]))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert np.array_equal(ds.pixel_array, pydicom.dcmread(path).pixel_array)


def test_jpeg2000_by_default_is_explicit_le_and_star_is_as_stored(
    served: tuple[Database, RunningServer], pydicom_files: Path
) -> None:
    db, running = served
    path = pydicom_files / "JPEG2000.dcm"
    url = _url(running, _uids(db, path))
    plain = httpx.get(url, headers={"Accept": 'multipart/related; type="application/dicom"'})
    ds = pydicom.dcmread(io.BytesIO(_parts(plain)[0]))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert np.array_equal(ds.pixel_array, pydicom.dcmread(path).pixel_array)
    star = httpx.get(
        url, headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
    )
    assert _parts(star)[0] == path.read_bytes()


def test_undecodable_instance_is_refused_before_any_byte(
    served: tuple[Database, RunningServer], pydicom_files: Path
) -> None:
    db, running = served
    path = pydicom_files / "JPEG-lossy.dcm"
    url = _url(running, _uids(db, path))
    for target, accept in (
        ("/frames/1", 'multipart/related; type="application/octet-stream"'),
        ("", 'multipart/related; type="application/dicom"'),
        ("/rendered", "image/jpeg"),
        ("/bulkdata/7FE00010", 'multipart/related; type="application/octet-stream"'),
    ):
        answer = httpx.get(url + target, headers={"Accept": accept})
        assert answer.status_code == 406, target
        assert _uids(db, path)[2] in answer.json()["detail"], target
    stored = httpx.get(
        url + "/frames/1", headers={"Accept": 'multipart/related; type="image/jpeg"'}
    )
    assert stored.status_code == 200
    assert _parts(stored)[0] == pydicom.encaps.get_frame(pydicom.dcmread(path).PixelData, 0)


@pytest.mark.parametrize(
    ("name", "accept"),
    [
        ("CT_small.dcm", 'multipart/related; type="image/jpeg"'),
        ("CT_small.dcm", "application/json"),
        ("JPEG2000.dcm", 'multipart/related; type="image/jpeg"'),
        (
            "JPEG2000.dcm",
            'multipart/related; type="image/jp2"; transfer-syntax=1.2.840.10008.1.2.4.90',
        ),
        (
            "JPEG-lossy.dcm",
            'multipart/related; type="image/jpeg"; transfer-syntax=1.2.840.10008.1.2.4.50',
        ),
    ],
)
def test_frames_accept_we_cannot_give_is_406(
    served: tuple[Database, RunningServer], pydicom_files: Path, name: str, accept: str
) -> None:
    db, running = served
    answer = httpx.get(
        _url(running, _uids(db, pydicom_files / name)) + "/frames/1", headers={"Accept": accept}
    )
    assert answer.status_code == 406
    assert "available" in answer.json()["detail"]


def test_frames_in_the_stored_media_type(
    served: tuple[Database, RunningServer], pydicom_files: Path
) -> None:
    db, running = served
    path = pydicom_files / "JPEG2000.dcm"
    answer = httpx.get(
        _url(running, _uids(db, path)) + "/frames/1",
        headers={
            "Accept": 'multipart/related; type="image/jp2"; transfer-syntax=1.2.840.10008.1.2.4.91'
        },
    )
    assert answer.status_code == 200
    original: Dataset = pydicom.dcmread(path)
    assert _parts(answer)[0] == pydicom.encaps.get_frame(original.PixelData, 0)
