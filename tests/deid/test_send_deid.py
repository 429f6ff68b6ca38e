"""``dicomstation send --deid``: what reaches a real Orthanc is de-identified."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from dicomstation.cli.main import app
from dicomstation.config import Credentials, DicomWebServer, Secret
from dicomstation.database import Database
from dicomstation.deid import Pseudonyms
from dicomstation.settings import Settings
from tests.deid.synth import FRAME, KEY, SERIES, SOP, STUDY, ct_instance, write_instance
from tests.peers import OrthancServer

pytestmark = pytest.mark.orthanc
runner = CliRunner()
ORIGINALS = ("Doe", "MRN12345", "ACC777", SOP, STUDY, SERIES, FRAME)


@pytest.fixture()
def env(clean_orthanc: OrthancServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings with server 'o' (Orthanc's DICOMweb) and the project key; a fresh database."""
    settings_file = tmp_path / "settings.toml"
    monkeypatch.setenv("DICOMSTATION_CONFIG", str(settings_file))
    monkeypatch.setenv("DICOMSTATION_DB", str(tmp_path / "db"))
    Settings(
        servers={"o": DicomWebServer("o", clean_orthanc.dicomweb_url, use_global_auth=True)},
        credentials=Credentials(
            username=clean_orthanc.user, password=Secret(clean_orthanc.password)
        ),
        deid_key=KEY,
    ).save(settings_file)
    write_instance(tmp_path / "in" / "ct.dcm")
    return tmp_path


def _stored(orthanc: OrthancServer) -> list[bytes]:
    with orthanc.rest() as client:
        return [client.get(f"/instances/{i}/file").content for i in client.get("/instances").json()]


def test_send_deid_stores_only_pseudonyms_and_resend_is_harmless(
    env: Path, clean_orthanc: OrthancServer
) -> None:
    with Database.open(env / "db") as db:  # one source by database UID
        db.add_files([env / "in" / "ct.dcm"], move=False)
    done = runner.invoke(app, ["send", "o", SERIES, "--deid"])
    assert done.exit_code == 0, done.output
    (raw,) = _stored(clean_orthanc)
    for original in ORIGINALS:
        assert original.encode() not in raw, original
    assert b"MRN12345" in (env / "in" / "ct.dcm").read_bytes()  # the original is untouched
    stored = pydicom.dcmread(pydicom.filebase.DicomBytesIO(raw))
    assert stored.PatientIdentityRemoved == "YES"
    assert stored.SOPInstanceUID == Pseudonyms(KEY).uid(SOP)
    assert stored.PatientID != "MRN12345" and "Doe" not in str(stored.PatientName)
    again = runner.invoke(app, ["send", "o", str(env / "in"), "--deid"])  # same file by path
    assert again.exit_code == 0, again.output
    assert clean_orthanc.count_instances() == 1  # same UIDs: nothing new on the server
    assert not list((env / "db" / "incoming").glob("deid-send*"))  # copies removed


def test_send_deid_options_are_applied(env: Path, clean_orthanc: OrthancServer) -> None:
    done = runner.invoke(
        app, ["send", "o", str(env / "in"), "--deid", "--deid-option", "retain-uids"]
    )
    assert done.exit_code == 0, done.output
    (raw,) = _stored(clean_orthanc)
    stored = pydicom.dcmread(pydicom.filebase.DicomBytesIO(raw))
    assert stored.SOPInstanceUID == SOP and b"MRN12345" not in raw


def test_refused_files_are_named_and_the_rest_is_sent(
    env: Path, clean_orthanc: OrthancServer
) -> None:
    us = ct_instance()
    us.Modality = "US"
    us.SOPInstanceUID = SOP + ".9"
    write_instance(env / "in" / "us.dcm", us)
    done = runner.invoke(app, ["send", "o", str(env / "in"), "--deid"])
    assert done.exit_code == 1, done.output
    lines = [line for line in done.output.splitlines() if "refused" in line]
    assert len(lines) == 1 and "us.dcm" in lines[0], done.output
    assert clean_orthanc.count_instances() == 1
    only_us = runner.invoke(app, ["send", "o", str(env / "in" / "us.dcm"), "--deid"])
    assert only_us.exit_code == 3 and "us.dcm" in only_us.output


def test_no_key_or_bad_option_is_a_one_line_usage_error(
    env: Path, clean_orthanc: OrthancServer
) -> None:
    Settings.load().__class__(servers=Settings.load().servers).save(env / "settings.toml")
    done = runner.invoke(app, ["send", "o", str(env / "in"), "--deid"])
    assert done.exit_code == 2 and "deid-key --generate" in done.output, done.output
    assert len(done.output.strip().splitlines()) == 1
    bad = runner.invoke(app, ["send", "o", str(env / "in"), "--deid-option", "retain-uids"])
    assert bad.exit_code == 2 and "--deid" in bad.output
    assert clean_orthanc.count_instances() == 0
