"""Issue 12: HTTP-level conformance of the DICOMweb server.

gzip for JSON (a 150-instance series' metadata was 2.3 MB uncompressed), HEAD
(was 405), ``Allow`` on /studies, a CORS preflight that advertised DELETE,
``quality`` ignored, no series/study ``/rendered``, ``application/dicom+xml``
silently answered with JSON, STOW without a top-level RetrieveURL.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from PIL import Image

from dicomstation.config import DicomWebServer
from dicomstation.database import Database
from dicomstation.models import Level, Query
from dicomstation.nodes.dicomweb import DicomWebNode
from dicomstation.server import RunningServer, ServerOptions, create_app, start_in_thread
from tests.server.conftest import sample_files

ORIGIN = "http://viewer.example"


@pytest.fixture(scope="module")
def served(pydicom_files: Path) -> Iterator[tuple[Database, RunningServer]]:
    with Database.temporary() as db:
        assert db.import_path(sample_files(pydicom_files)).ok
        options = ServerOptions(port=0, cors_origins=(ORIGIN,), max_request_bytes=2_000_000)
        running = start_in_thread(create_app(db, options))
        try:
            yield db, running
        finally:
            running.stop()


def _ct_series(db: Database) -> tuple[str, str, str]:
    for ref in db.find(Query(Level.SERIES, {"Modality": "CT"})):
        if ref.num_instances == 4:
            sop = db.find(Query(Level.IMAGE, study_uid=ref.study_uid, series_uid=ref.series_uid))
            return ref.study_uid, ref.series_uid, sop[0].sop_instance_uid
    raise AssertionError("the 4-slice CT2 series is missing")


def _ct_small(db: Database) -> tuple[str, str, str]:
    """CT_small (128 x 128): the one-instance CT series."""
    for ref in db.find(Query(Level.SERIES, {"Modality": "CT"})):
        if ref.num_instances == 1:
            sop = db.find(Query(Level.IMAGE, study_uid=ref.study_uid, series_uid=ref.series_uid))
            return ref.study_uid, ref.series_uid, sop[0].sop_instance_uid
    raise AssertionError("CT_small is missing")


def _raw(
    running: RunningServer, path: str, headers: dict[str, str]
) -> tuple[int, httpx.Headers, bytes]:
    """A GET whose body is not decoded by httpx (so Content-Encoding can be checked)."""
    with httpx.Client() as http:
        request = http.build_request("GET", f"{running.url}/dicom-web{path}", headers=headers)
        answer = http.send(request, stream=True)
        raw = b"".join(answer.iter_raw())  # the bytes as sent, not decoded
        answer.close()
        return answer.status_code, answer.headers, raw


def test_json_is_gzipped_when_accepted(served: tuple[Database, RunningServer]) -> None:
    db, running = served
    study, series, _sop = _ct_series(db)
    path = f"/studies/{study}/series/{series}/metadata"
    _status, zipped_headers, zipped = _raw(running, path, {"Accept-Encoding": "gzip"})
    assert zipped_headers["content-encoding"] == "gzip"
    assert int(zipped_headers["content-length"]) == len(zipped)
    _status, plain_headers, plain = _raw(running, path, {"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain_headers
    assert gzip.decompress(zipped) == plain
    assert len(zipped) < len(plain) / 3
    client = DICOMwebClient(url=f"{running.url}/dicom-web")  # requests sends gzip, decodes it
    assert len(client.retrieve_series_metadata(study, series)) == 4


def test_multipart_is_not_gzipped(served: tuple[Database, RunningServer]) -> None:
    db, running = served
    study, series, _sop = _ct_series(db)
    status, headers, body = _raw(
        running, f"/studies/{study}/series/{series}", {"Accept-Encoding": "gzip"}
    )
    assert status == 200
    assert "content-encoding" not in headers
    assert headers["content-type"].startswith("multipart/related")
    assert int(headers["content-length"]) == len(body)


@pytest.mark.parametrize("kind", ["", "/metadata", "/rendered"])
def test_head_wherever_get(served: tuple[Database, RunningServer], kind: str) -> None:
    db, running = served
    study, series, sop = _ct_series(db)
    url = f"{running.url}/dicom-web/studies/{study}/series/{series}/instances/{sop}{kind}"
    get = httpx.get(url)
    head = httpx.head(url)
    assert get.status_code == head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"].split(";")[0] == get.headers["content-type"].split(";")[0]
    assert httpx.head(f"{running.url}/dicom-web/studies").status_code == 200


def test_allow_lists_every_method_of_the_path(served: tuple[Database, RunningServer]) -> None:
    _db, running = served
    answer = httpx.put(f"{running.url}/dicom-web/studies", content=b"")
    assert answer.status_code == 405
    assert {m.strip() for m in answer.headers["allow"].split(",")} == {"GET", "HEAD", "POST"}


def test_preflight_lists_only_the_paths_methods(served: tuple[Database, RunningServer]) -> None:
    _db, running = served
    url = f"{running.url}/dicom-web/studies"
    asks = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    allowed = httpx.options(url, headers=asks)
    assert allowed.status_code == 200
    methods = {m.strip() for m in allowed.headers["access-control-allow-methods"].split(",")}
    assert methods == {"GET", "HEAD", "POST"}
    refused = httpx.options(url, headers={**asks, "Access-Control-Request-Method": "DELETE"})
    assert refused.status_code == 400
    assert "DELETE" not in refused.headers.get("access-control-allow-methods", "")


def test_quality_is_honoured(served: tuple[Database, RunningServer]) -> None:
    db, running = served
    study, series, sop = _ct_small(db)
    url = f"{running.url}/dicom-web/studies/{study}/series/{series}/instances/{sop}/rendered"
    low = httpx.get(url, params={"quality": "5"}, headers={"Accept": "image/jpeg"})
    high = httpx.get(url, params={"quality": "95"}, headers={"Accept": "image/jpeg"})
    assert low.status_code == high.status_code == 200
    assert len(low.content) < len(high.content) / 2
    assert httpx.get(url, params={"quality": "0"}).status_code == 400


@pytest.mark.parametrize("level", ["series", "study"])
def test_series_and_study_rendered(served: tuple[Database, RunningServer], level: str) -> None:
    db, running = served
    study, series, _sop = _ct_small(db)
    path = f"/studies/{study}" + (f"/series/{series}" if level == "series" else "")
    answer = httpx.get(f"{running.url}/dicom-web{path}/rendered", headers={"Accept": "image/png"})
    assert answer.status_code == 200
    image = Image.open(io.BytesIO(answer.content))
    assert image.format == "PNG"
    assert image.size == (128, 128)  # full size, not a thumbnail


@pytest.mark.parametrize("kind", ["metadata", "qido"])
def test_dicom_xml_is_406(served: tuple[Database, RunningServer], kind: str) -> None:
    db, running = served
    study, _series, _sop = _ct_series(db)
    path = f"/studies/{study}/metadata" if kind == "metadata" else "/studies"
    answer = httpx.get(
        f"{running.url}/dicom-web{path}",
        headers={"Accept": 'multipart/related; type="application/dicom+xml"'},
    )
    assert answer.status_code == 406
    assert "application/dicom+json" in answer.json()["detail"]


def test_stow_answer_has_top_level_retrieve_url(
    served: tuple[Database, RunningServer], pydicom_files: Path
) -> None:
    _db, running = served
    client = DICOMwebClient(url=f"{running.url}/dicom-web")
    ds = pydicom.dcmread(pydicom_files / "MR_small.dcm")
    answer = client.store_instances([ds])
    assert answer.RetrieveURL == f"{running.url}/dicom-web/studies/{ds.StudyInstanceUID}"
    assert httpx.get(answer.RetrieveURL + "/metadata").status_code == 200


def test_our_client_reads_a_gzipped_stow_answer(pydicom_files: Path) -> None:
    """dicomstation's own STOW-RS client against our gzip-enabled server (answers > 512 B)."""
    with Database.temporary() as db:
        running = start_in_thread(create_app(db, ServerOptions(port=0)))
        try:
            server = DicomWebServer(name="self", url=f"{running.url}/dicom-web")
            files = sample_files(pydicom_files)
            with DicomWebNode.from_config(server) as node:
                report = node.store(files)
            assert report.ok, report.failed
            assert len(db.find(Query(Level.IMAGE))) == len(files)
        finally:
            running.stop()
