"""The remote CLI commands against the real Orthanc (query, metadata, fetch, send)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dicomstation.cli.main import app
from dicomstation.config import Credentials, DicomWebServer, Secret
from dicomstation.database import Database
from dicomstation.settings import Settings
from tests.dicomweb.conftest import SERIES_A, SERIES_B, STUDY
from tests.peers import OrthancServer

pytestmark = pytest.mark.orthanc
runner = CliRunner()


@pytest.fixture()
def env(orthanc: OrthancServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings with server 'o' (global credentials) and a fresh database folder."""
    settings_file = tmp_path / "settings.toml"
    monkeypatch.setenv("DICOMSTATION_CONFIG", str(settings_file))
    db = tmp_path / "db"
    monkeypatch.setenv("DICOMSTATION_DB", str(db))
    Settings(
        servers={"o": DicomWebServer("o", orthanc.dicomweb_url, use_global_auth=True)},
        credentials=Credentials(username=orthanc.user, password=Secret(orthanc.password)),
    ).save(settings_file)
    return db


def test_query_levels_and_filters(loaded_orthanc: OrthancServer, env: Path) -> None:
    result = runner.invoke(app, ["query", "o", "--PatientName", "SYN*", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["0020000D"]["Value"] == [STUDY]
    result = runner.invoke(
        app, ["query", "o", "--level", "series", "--study", STUDY, "--Modality", "CT"]
    )
    assert result.exit_code == 0 and "CT axial" in result.stdout
    result = runner.invoke(
        app,
        [
            "query",
            "o",
            "--level",
            "instance",
            "--study",
            STUDY,
            "--series",
            SERIES_B,
            "--limit",
            "3",
            "--json",
        ],
    )
    assert len(json.loads(result.stdout)) == 3
    result = runner.invoke(app, ["query", "o", "--filter", "StudyDate=20250101-", "--json"])
    assert json.loads(result.stdout) == []


def test_query_errors(loaded_orthanc: OrthancServer, env: Path) -> None:
    result = runner.invoke(app, ["query", "o", "--StudyDate", "2024-01-01"])
    assert result.exit_code == 2 and "StudyDate" in result.output
    result = runner.invoke(app, ["query", "nosuch"])
    assert result.exit_code == 2 and "unknown server 'nosuch'" in result.output
    result = runner.invoke(app, ["query", "o", "--filter", "oops"])
    assert result.exit_code == 2 and "KEY=VALUE" in result.output


def test_metadata(loaded_orthanc: OrthancServer, env: Path) -> None:
    result = runner.invoke(app, ["metadata", "o", STUDY, "--series", SERIES_B, "--json"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 5
    result = runner.invoke(app, ["metadata", "o", STUDY])
    assert result.exit_code == 0 and "64 x 64" in result.stdout and "CT" in result.stdout


def test_fetch_then_send_back(loaded_orthanc: OrthancServer, env: Path) -> None:
    result = runner.invoke(app, ["fetch", "o", STUDY, "--series", SERIES_B, "--concurrency", "2"])
    assert result.exit_code == 0, result.output
    assert "fetched 5, skipped 0, failed 0" in result.stdout
    result = runner.invoke(app, ["fetch", "o", STUDY, "--json"])
    assert json.loads(result.stdout)["succeeded"] == 12
    loaded_orthanc.clear()
    result = runner.invoke(app, ["send", "o", SERIES_B, f"{SERIES_A}.1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["succeeded"] == 6
    assert loaded_orthanc.count_instances() == 6
    with Database.open(env) as db:
        folder = db.series_files(SERIES_A)[0].parent
    result = runner.invoke(app, ["send", "o", str(folder)])
    assert result.exit_code == 0 and "sent 12" in result.stdout


def test_fetch_unknown_study_and_send_unknown_uid(loaded_orthanc: OrthancServer, env: Path) -> None:
    result = runner.invoke(app, ["fetch", "o", "1.2.3.4.5.6"])
    assert result.exit_code == 3 and "1.2.3.4.5.6" in result.output and "on o" in result.output
    result = runner.invoke(app, ["send", "o", "9.9.9"])
    assert result.exit_code == 3 and "9.9.9" in result.output
