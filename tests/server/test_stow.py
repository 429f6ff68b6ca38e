"""STOW-RS into the local database: stores, partial failures, bad requests storing nothing."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dicomstation.database import Database
from dicomstation.models import Query
from dicomstation.server import RunningServer

from .conftest import sample_files

Served = tuple[Database, RunningServer]


def _body(parts: list[bytes], boundary: str = "xyzzy", close: bool = True) -> bytes:
    out = b""
    for part in parts:
        out += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
    return out + (f"--{boundary}--\r\n".encode() if close else b"")


def _post(
    server: RunningServer,
    body: bytes,
    path: str = "/studies",
    ctype: str = 'multipart/related; type="application/dicom"; boundary=xyzzy',
) -> httpx.Response:
    return httpx.post(
        f"{server.url}/dicom-web{path}",
        content=body,
        headers={"Content-Type": ctype, "Accept": "application/dicom+json"},
    )


def _nothing_stored(db: Database) -> None:
    assert db.find(Query()) == []
    assert os.listdir(db.root / "incoming") == []


def test_dicomweb_client_store_then_retrieve(empty_server: Served, pydicom_files: Path) -> None:
    db, server = empty_server
    files = sample_files(pydicom_files)
    client = DICOMwebClient(url=f"{server.url}/dicom-web")
    answer = client.store_instances([pydicom.dcmread(f) for f in files])
    stored = answer.ReferencedSOPSequence
    assert len(stored) == len(files)
    assert "FailedSOPSequence" not in answer
    assert len(db.has_instances([s.ReferencedSOPInstanceUID for s in stored])) == len(files)
    url = stored[0].RetrieveURL
    assert httpx.get(url).status_code == 200
    # storing again is not a failure (already present)
    again = client.store_instances([pydicom.dcmread(files[0])])
    assert len(again.ReferencedSOPSequence) == 1


def test_partial_failure_lists_failed_parts(empty_server: Served, pydicom_files: Path) -> None:
    db, server = empty_server
    good = (pydicom_files / "CT_small.dcm").read_bytes()
    response = _post(server, _body([good, b"this is not DICOM"]))
    assert response.status_code == 202
    body = response.json()
    assert len(body["00081199"]["Value"]) == 1
    failed = body["00081198"]["Value"]
    assert failed[0]["00081197"]["Value"] == [0xC000]
    assert "part 2" in response.headers["warning"]
    assert len(db.find(Query())) == 1


def test_all_failed_is_409_and_nothing_stored(empty_server: Served) -> None:
    db, server = empty_server
    response = _post(server, _body([b"junk", b"more junk"]))
    assert response.status_code == 409
    assert len(response.json()["00081198"]["Value"]) == 2
    _nothing_stored(db)


def test_study_in_url_must_match(empty_server: Served, pydicom_files: Path) -> None:
    db, server = empty_server
    data = (pydicom_files / "CT_small.dcm").read_bytes()
    response = _post(server, _body([data]), path="/studies/1.2.3.4")
    assert response.status_code == 409
    assert response.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xA900]
    assert "not 1.2.3.4" in response.headers["warning"]
    _nothing_stored(db)


def test_single_application_dicom_body(empty_server: Served, pydicom_files: Path) -> None:
    db, server = empty_server
    data = (pydicom_files / "CT_small.dcm").read_bytes()
    response = _post(server, data, ctype="application/dicom")
    assert response.status_code == 200
    assert len(db.find(Query())) == 1


@pytest.mark.parametrize(
    ("body", "ctype", "status", "fragment"),
    [
        (None, 'multipart/related; type="application/dicom"; boundary=xyzzy', 400, "truncated"),
        (
            b"garbage without boundary",
            'multipart/related; type="application/dicom"; boundary=xyzzy',
            400,
            "malformed",
        ),
        (b"x", 'multipart/related; type="application/dicom"', 400, "valid boundary"),
        (b"x", "application/json", 415, "multipart/related"),
        (b"x", 'multipart/related; type="application/dicom+xml"; boundary=b', 415, "dicom+xml"),
        (
            b"--xyzzy--\r\n",
            'multipart/related; type="application/dicom"; boundary=xyzzy',
            400,
            "no DICOM part",
        ),
    ],
)
def test_malformed_requests_store_nothing(
    empty_server: Served,
    pydicom_files: Path,
    body: bytes | None,
    ctype: str,
    status: int,
    fragment: str,
) -> None:
    db, server = empty_server
    if body is None:  # a good part, then the body stops before the closing boundary
        body = _body([(pydicom_files / "CT_small.dcm").read_bytes()], close=False)
    response = _post(server, body, ctype=ctype)
    assert response.status_code == status, response.text
    assert fragment in response.json()["detail"]
    _nothing_stored(db)


def test_oversized_requests_are_413(empty_server: Served, pydicom_files: Path) -> None:
    db, server = empty_server
    big = _body([(pydicom_files / "CT_small.dcm").read_bytes()] * 200)  # ~8 MB > 2 MB limit
    response = _post(server, big)
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(10):
            yield big[: len(big) // 10]

    streamed = httpx.post(
        f"{server.url}/dicom-web/studies",
        content=chunks(),
        headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=xyzzy'},
    )
    assert streamed.status_code == 413
    _nothing_stored(db)


def test_bad_study_uid_in_stow_url(empty_server: Served) -> None:
    _db, server = empty_server
    response = _post(server, _body([b"x"]), path="/studies/01.2")
    assert response.status_code == 400
    assert "01.2" in response.json()["detail"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.binary(max_size=300), max_size=4),
    st.booleans(),
    st.sampled_from(["xyzzy", "other"]),
)
def test_fuzzed_bodies_never_crash_or_store_junk(
    empty_server: Served, parts: list[bytes], close: bool, boundary: str
) -> None:
    db, server = empty_server
    body = _body(parts, close=close)
    response = _post(
        server, body, ctype=f'multipart/related; type="application/dicom"; boundary={boundary}'
    )
    assert 400 <= response.status_code < 500, response.text
    assert db.find(Query()) == []
    assert os.listdir(db.root / "incoming") == []
