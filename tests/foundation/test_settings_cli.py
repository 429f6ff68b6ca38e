"""Settings file (0600, atomic, secrets hidden) and the foundation CLI commands."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dicomstation import ConfigError, Credentials, DicomWebServer, DimseServer, Secret, Settings
from dicomstation.cli.main import app
from tests.synth import write_ct_series

SECRET = "s3cr3t-Pa55"


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DICOMSTATION_CONFIG", str(tmp_path / "cfg" / "settings.toml"))
    monkeypatch.setenv("DICOMSTATION_DB", str(tmp_path / "db"))
    return tmp_path


def test_settings_roundtrip_mode_and_global_credentials(env: Path) -> None:
    settings = Settings().with_credentials(Credentials(username="alice", password=Secret(SECRET)))
    settings = settings.with_server(
        DicomWebServer("web", "https://pacs.example/dicom-web", use_global_auth=True)
    )
    settings = settings.with_server(DimseServer("old", "PACS", "127.0.0.1", 104))
    path = settings.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = Settings.load()
    web = loaded.server("web")
    assert isinstance(web, DicomWebServer)
    assert web.credentials.username == "alice"
    assert web.credentials.password.reveal() == SECRET
    assert web.verify_tls is True
    assert SECRET not in repr(loaded) and SECRET not in str(web)
    assert isinstance(loaded.server("old"), DimseServer)
    with pytest.raises(ConfigError, match="unknown server 'nope'"):
        loaded.server("nope")
    assert not list(path.parent.glob(".settings-*")), "no temporary file left behind"


def test_malformed_settings_name_the_file(env: Path) -> None:
    path = env / "cfg" / "settings.toml"
    path.parent.mkdir(parents=True)
    path.write_text("[servers.x]\nprotocol = 'dimse'\nhost = 'h'\n")
    with pytest.raises(ConfigError, match="server 'x'"):
        Settings.load()
    path.write_text("not toml [")
    with pytest.raises(ConfigError, match=str(path)):
        Settings.load()


def test_cli_auth_and_servers_never_print_secrets(env: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["auth", "set", "--user", "bob", "--password-stdin"], input=SECRET + "\n"
    )
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    result = runner.invoke(
        app,
        ["server", "add", "web", "--url", "http://127.0.0.1:1/dw/", "--token-stdin"],
        input="tok-" + SECRET + "\n",
    )
    assert result.exit_code == 0, result.output
    runner.invoke(
        app, ["server", "add", "old", "--ae", "PACS", "--host", "127.0.0.1", "--port", "11112"]
    )
    listed = runner.invoke(app, ["server", "list", "--json"])
    assert SECRET not in listed.output
    rows = {r["name"]: r for r in json.loads(listed.output)}
    assert rows["web"]["auth"] == "token" and rows["web"]["address"] == "http://127.0.0.1:1/dw"
    assert rows["old"]["address"] == "PACS@127.0.0.1:11112"
    shown = runner.invoke(app, ["auth", "show"])
    assert "password: set" in shown.output and SECRET not in shown.output
    text = (env / "cfg" / "settings.toml").read_text()
    assert SECRET in text  # stored (0600), only there
    assert runner.invoke(app, ["server", "remove", "old"]).exit_code == 0
    missing = runner.invoke(app, ["server", "remove", "old"])
    assert missing.exit_code == 2 and "unknown server 'old'" in missing.output


def test_cli_db_import_ls_show_rm(env: Path) -> None:
    paths = write_ct_series(env / "src", 3, size=8, patient_name="CLI^TEST")
    (env / "src" / "notes.txt").write_text("not dicom")
    runner = CliRunner()
    result = runner.invoke(app, ["db", "import", str(env / "src"), "--json"])
    assert result.exit_code == 1, result.output  # partly: notes.txt not imported
    summary = json.loads(result.output[result.output.index("{") :])
    assert summary["imported"] == 3
    assert any("notes.txt: not a DICOM file" in v for v in summary["failed"].values())
    listed = json.loads(runner.invoke(app, ["db", "ls", "--PatientName", "cli*", "--json"]).output)
    assert len(listed) == 1
    study_uid = listed[0]["0020000D"]["Value"][0]
    series = json.loads(
        runner.invoke(app, ["db", "ls", "--level", "series", "--study", study_uid, "--json"]).output
    )
    assert series[0]["00201209"]["Value"] == [3]
    shown = json.loads(runner.invoke(app, ["db", "show", series[0]["0020000E"]["Value"][0]]).output)
    assert len(shown) == 3
    sop_uid = shown[1]["00080018"]["Value"][0]
    (one,) = json.loads(runner.invoke(app, ["db", "show", sop_uid]).output)
    assert one["00080018"]["Value"] == [sop_uid]
    assert runner.invoke(app, ["db", "rm", study_uid]).exit_code == 0
    gone = runner.invoke(app, ["db", "show", study_uid])
    assert gone.exit_code == 3 and study_uid in gone.output
    assert all(p.exists() for p in paths)
