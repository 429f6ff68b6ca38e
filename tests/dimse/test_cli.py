"""The protocol-neutral CLI against a DIMSE server, and ``dicomstation listen``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dicomstation.cli.main import app
from dicomstation.database import Database
from tests.dimse.conftest import sop_uid
from tests.peers import OrthancServer

runner = CliRunner()


@pytest.fixture()
def env(clean_orthanc: OrthancServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings with the Orthanc DICOM port as server "pacs"; a database in tmp_path."""
    monkeypatch.setenv("DICOMSTATION_CONFIG", str(tmp_path / "settings.toml"))
    db = tmp_path / "db"
    monkeypatch.setenv("DICOMSTATION_DB", str(db))
    result = runner.invoke(
        app,
        [
            "server",
            "add",
            "pacs",
            "--ae",
            clean_orthanc.aet,
            "--host",
            "127.0.0.1",
            "--port",
            str(clean_orthanc.dicom_port),
        ],
    )
    assert result.exit_code == 0, result.output
    return db


@pytest.mark.orthanc
def test_echo_send_query_fetch_over_dimse(
    env: Path, ct_series: list[Path], clean_orthanc: OrthancServer
) -> None:
    result = runner.invoke(app, ["server", "echo", "pacs"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["send", "pacs", str(ct_series[0].parent), "--json"])
    assert result.exit_code == 0, result.output
    assert clean_orthanc.count_instances() == len(ct_series)
    result = runner.invoke(app, ["query", "pacs", "--PatientID", "DIMSE1", "--json"])
    assert result.exit_code == 0, result.output
    studies = json.loads(result.stdout)
    assert len(studies) == 1
    study = studies[0]["0020000D"]["Value"][0]
    result = runner.invoke(
        app, ["query", "pacs", "--level", "instance", "--study", study, "--json"]
    )
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == len(ct_series)
    result = runner.invoke(app, ["fetch", "pacs", study, "--json"])
    assert result.exit_code == 0, result.output
    with Database.open(env) as db:
        assert db.has_instances(sop_uid(p) for p in ct_series) == {sop_uid(p) for p in ct_series}


@pytest.mark.orthanc
def test_unreachable_dimse_server_is_one_clear_line(env: Path) -> None:
    result = runner.invoke(
        app, ["server", "add", "dead", "--ae", "X", "--host", "127.0.0.1", "--port", "9"]
    )
    assert result.exit_code == 0
    result = runner.invoke(app, ["server", "echo", "dead"])
    assert result.exit_code == 3
    assert "C-ECHO on dead" in result.output and "Traceback" not in result.output


@pytest.mark.dcmtk
def test_listen_receives_until_sigterm(tmp_path: Path, ct_series: list[Path]) -> None:
    db = tmp_path / "db"
    env = dict(os.environ, DICOMSTATION_CONFIG=str(tmp_path / "settings.toml"))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dicomstation.cli.main",
            "listen",
            "--port",
            "0",
            "--ae",
            "LISTENER",
            "--db",
            str(db),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "listening as LISTENER on 127.0.0.1:" in first, first
        port = int(first.split("127.0.0.1:")[1].split(",")[0])
        sent = subprocess.run(
            ["storescu", "-aec", "LISTENER", "127.0.0.1", str(port), *map(str, ct_series)],
            capture_output=True,
            timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"stopped: {len(ct_series)} received" in out
    with Database.open(db) as database:
        assert len(database.has_instances(sop_uid(p) for p in ct_series)) == len(ct_series)


@pytest.mark.orthanc
def test_send_over_parallel_associations(
    env: Path, ct_series: list[Path], clean_orthanc: OrthancServer
) -> None:
    files = [str(p) for p in ct_series]
    result = runner.invoke(app, ["send", "pacs", *files, "--associations", "3", "--json"])
    assert result.exit_code == 0, result.output
    assert clean_orthanc.count_instances() == len(ct_series)
    result = runner.invoke(app, ["send", "pacs", *files, "--associations", "0"])
    assert result.exit_code != 0 and "--associations" in result.output
