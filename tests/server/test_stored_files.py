"""Issue 12: instances stored without a File Meta header, and CORS on every error answer.

pydicom's ``rtstruct.dcm`` has no preamble, no ``DICM`` and no file meta; ``db import``
accepts it. OHIF's study list asks ``includefield=00080060``, which used to 500 for
the whole list; the instance was served without the ``DICM`` prefix; ``db show``
printed a traceback. A 500 carried no CORS headers while a 404 did.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from typer.testing import CliRunner

from dicomstation.cli.main import app
from dicomstation.database import Database
from dicomstation.nodes.multipart import boundary_of, iter_parts
from dicomstation.server import RunningServer, ServerOptions, create_app, start_in_thread

ORIGIN = "http://viewer.example"
RTSTRUCT_SOP = "1.2.826.0.1.3680043.8.498.2010020400001"


@pytest.fixture(scope="module")
def served(pydicom_files: Path) -> Iterator[tuple[Database, RunningServer]]:
    """rtstruct.dcm (no file meta) and CT_small.dcm, served with CORS for one origin."""
    with Database.temporary() as db:
        report = db.import_path([pydicom_files / "rtstruct.dcm", pydicom_files / "CT_small.dcm"])
        assert report.ok, report.failed
        running = start_in_thread(create_app(db, ServerOptions(port=0, cors_origins=(ORIGIN,))))
        try:
            yield db, running
        finally:
            running.stop()


def _rtstruct_uids(db: Database) -> tuple[str, str]:
    header = db.headers_of(RTSTRUCT_SOP)[0]
    return header["0020000D"]["Value"][0], header["0020000E"]["Value"][0]


def test_file_has_no_meta_header(pydicom_files: Path) -> None:
    raw = (pydicom_files / "rtstruct.dcm").read_bytes()
    assert raw[128:132] != b"DICM"


def test_study_list_with_modality_field_as_ohif_asks(
    served: tuple[Database, RunningServer],
) -> None:
    _db, running = served
    client = DICOMwebClient(url=f"{running.url}/dicom-web")
    studies = client.search_for_studies(fields=["00080060"])
    assert len(studies) == 2
    modalities = {s["00080060"]["Value"][0] for s in studies if "00080060" in s}
    assert modalities == {"RTSTRUCT", "CT"}


def test_instance_is_a_valid_part10_file(served: tuple[Database, RunningServer]) -> None:
    db, running = served
    study, series = _rtstruct_uids(db)
    client = DICOMwebClient(url=f"{running.url}/dicom-web")
    ds = client.retrieve_instance(study, series, RTSTRUCT_SOP)  # transfer-syntax=*
    assert ds.SOPInstanceUID == RTSTRUCT_SOP
    url = f"{running.url}/dicom-web/studies/{study}/series/{series}/instances/{RTSTRUCT_SOP}"
    for accept in ("*", "1.2.840.10008.1.2.1"):
        answer = httpx.get(
            url,
            headers={
                "Accept": f'multipart/related; type="application/dicom"; transfer-syntax={accept}'
            },
        )
        assert answer.status_code == 200
        body = next(iter_parts([answer.content], boundary_of(answer.headers["content-type"])))
        data = body.read()
        assert data[128:132] == b"DICM", accept
        parsed = pydicom.dcmread(io.BytesIO(data))  # no force needed: a real Part 10 file
        assert parsed.file_meta.MediaStorageSOPInstanceUID == RTSTRUCT_SOP
        assert len(parsed.StructureSetROISequence) == len(
            pydicom.dcmread(db.instance_path(RTSTRUCT_SOP), force=True).StructureSetROISequence
        )


def test_metadata_of_the_instance(served: tuple[Database, RunningServer]) -> None:
    db, running = served
    study, series = _rtstruct_uids(db)
    client = DICOMwebClient(url=f"{running.url}/dicom-web")
    metadata = client.retrieve_instance_metadata(study, series, RTSTRUCT_SOP)
    assert metadata["00080060"]["Value"] == ["RTSTRUCT"]
    assert "7FE00010" not in metadata  # no pixel data, no pixel BulkDataURI


def test_db_show_prints_the_header(served: tuple[Database, RunningServer]) -> None:
    db, _running = served
    result = CliRunner().invoke(app, ["db", "show", RTSTRUCT_SOP, "--db", str(db.root)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    shown = json.loads(result.output)
    assert shown[0]["00080018"]["Value"] == [RTSTRUCT_SOP]


def test_every_error_answer_carries_cors_headers(pydicom_files: Path, tmp_path: Path) -> None:
    """A stored file gone from disk is a real internal error: 500, with CORS, and the
    connection stays usable (no reset)."""
    source = tmp_path / "CT_small.dcm"
    shutil.copy(pydicom_files / "CT_small.dcm", source)
    with Database.temporary() as db:
        assert db.import_path([source]).ok
        sop = pydicom.dcmread(source).SOPInstanceUID
        header = db.headers_of(sop)  # the study / series UIDs, before the file goes
        study, series = header[0]["0020000D"]["Value"][0], header[0]["0020000E"]["Value"][0]
        db.instance_path(sop).unlink()
        running = start_in_thread(create_app(db, ServerOptions(port=0, cors_origins=(ORIGIN,))))
        try:
            with httpx.Client(
                base_url=f"{running.url}/dicom-web", headers={"Origin": ORIGIN}
            ) as http:
                broken = http.get(f"/studies/{study}/series/{series}/instances/{sop}/rendered")
                assert broken.status_code == 500
                assert broken.headers["access-control-allow-origin"] == ORIGIN
                assert "detail" in broken.json()
                missing = http.get("/studies/1.2.3/metadata")
                assert missing.status_code == 404
                assert missing.headers["access-control-allow-origin"] == ORIGIN
        finally:
            running.stop()
