"""Every server option from `server add/edit`, the default server, and `server test`.

`server test` runs against the real Orthanc (DICOMweb with Basic auth, and DIMSE),
with a one-instance retrieve into a temporary database.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dicomstation.cli.common import ExitCode
from dicomstation.cli.main import app
from dicomstation.config import DicomWebServer, DimseServer
from dicomstation.settings import Settings
from tests.peers import OrthancServer
from tests.synth import write_ct_series

runner = CliRunner()


@pytest.fixture()
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "settings.toml"
    monkeypatch.setenv("DICOMSTATION_CONFIG", str(path))
    monkeypatch.setenv("DICOMSTATION_DB", str(tmp_path / "db"))
    return path


def _ok(*argv: str, stdin: str | None = None) -> str:
    result = runner.invoke(app, list(argv), input=stdin)
    assert result.exit_code == 0, result.output
    return result.stdout


def _listed(name: str) -> dict[str, object]:
    rows = json.loads(_ok("server", "list", "--json"))
    (row,) = [r for r in rows if r["name"] == name]
    return dict(row)


def test_every_dimse_option_from_add_and_edit(cfg: Path) -> None:
    _ok("server", "add", "pacs", "--ae", "PACS", "--host", "127.0.0.1", "--port", "4242")
    _ok(
        "server", "edit", "pacs", "--move-destination", "STATION", "--calling-ae", "ME",
        "--timeout", "7.5", "--default",
    )  # fmt: skip
    server = Settings.load(cfg).servers["pacs"]
    assert isinstance(server, DimseServer)
    assert (server.ae_title, server.host, server.port) == ("PACS", "127.0.0.1", 4242)
    assert (server.move_destination, server.calling_ae, server.timeout) == ("STATION", "ME", 7.5)
    assert Settings.load(cfg).default_server == "pacs"
    row = _listed("pacs")
    assert row["move_destination"] == "STATION" and row["timeout"] == 7.5 and row["default"]
    _ok("server", "edit", "pacs", "--port", "4243")  # keeps everything else
    kept = Settings.load(cfg).servers["pacs"]
    assert isinstance(kept, DimseServer)
    assert (kept.port, kept.move_destination, kept.calling_ae) == (4243, "STATION", "ME")
    _ok("server", "remove", "pacs")
    assert Settings.load(cfg).default_server == ""


def test_every_dicomweb_option_and_origin_rules(cfg: Path) -> None:
    _ok(
        "server", "add", "web", "--url", "https://pacs.example/dw", "--user", "ann",
        "--password-stdin", "--timeout", "12", "--ca-bundle", "/etc/ca.pem",
        "--proxy", "http://proxy.example:3128",
        stdin="pw-1\n",
    )  # fmt: skip
    _ok("server", "edit", "web", "--no-verify")
    server = Settings.load(cfg).servers["web"]
    assert isinstance(server, DicomWebServer)
    assert (server.timeout, server.ca_bundle, server.verify_tls) == (12.0, "/etc/ca.pem", False)
    assert server.proxy == "http://proxy.example:3128"
    assert server.credentials.password.reveal() == "pw-1"
    _ok("server", "edit", "web", "--url", "https://pacs.example/other")  # same origin: kept
    moved = Settings.load(cfg).servers["web"]
    assert isinstance(moved, DicomWebServer) and moved.credentials.password.reveal() == "pw-1"
    _ok("server", "edit", "web", "--url", "https://evil.example/dw")  # new origin: no secret
    moved = Settings.load(cfg).servers["web"]
    assert isinstance(moved, DicomWebServer) and not moved.credentials.password
    assert moved.credentials.username == "ann"
    _ok(
        "server",
        "edit",
        "web",
        "--url",
        "https://new.example/dw",
        "--password-stdin",
        stdin="pw-2\n",
    )
    moved = Settings.load(cfg).servers["web"]
    assert isinstance(moved, DicomWebServer)
    assert moved.credentials.password.reveal() == "pw-2"
    assert moved.credentials.origin == "https://new.example:443"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["server", "edit", "web", "--move-destination", "X"], "--move-destination"),
        (["server", "edit", "nosuch", "--timeout", "3"], "unknown server 'nosuch'"),
        (["server", "edit", "web", "--timeout", "0"], "--timeout"),
        (["server", "add", "d", "--ae", "A" * 17, "--host", "h"], "--ae"),
        (["server", "add", "w", "--user", "bob", "--url", "https://x.example"], "--password-stdin"),
        (["server", "test"], "no default server"),
    ],
)
def test_bad_server_options_are_usage_errors(cfg: Path, argv: list[str], needle: str) -> None:
    _ok("server", "add", "web", "--url", "https://pacs.example/dw")
    result = runner.invoke(app, argv)  # no TTY: a --user without a password is refused
    assert result.exit_code == ExitCode.USAGE, result.output
    assert needle in result.stderr and "Traceback" not in result.output


def test_server_test_on_a_closed_port_fails_at_echo(cfg: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _ok("server", "add", "dead", "--ae", "X", "--host", "127.0.0.1", "--port", str(port))
    result = runner.invoke(app, ["server", "test", "dead", "--json"])
    assert result.exit_code == ExitCode.NOTHING_DONE, result.output
    (echo,) = json.loads(result.stdout)
    assert echo["check"] == "echo" and not echo["ok"] and "connection refused" in echo["detail"]


def test_server_test_on_orthanc_dicomweb_and_dimse(
    cfg: Path, clean_orthanc: OrthancServer, tmp_path: Path
) -> None:
    clean_orthanc.upload(*write_ct_series(tmp_path / "ct", 3, size=16))
    url = clean_orthanc.dicomweb_url
    _ok("server", "add", "o", "--url", url, "--user", clean_orthanc.user, "--password-stdin",
        stdin=clean_orthanc.password + "\n")  # fmt: skip
    port = str(clean_orthanc.dicom_port)
    _ok("server", "add", "od", "--ae", clean_orthanc.aet, "--host", "127.0.0.1", "--port", port)
    for name in ("o", "od"):
        result = runner.invoke(app, ["server", "test", name, "--retrieve", "--json"])
        assert result.exit_code == 0, result.output
        checks = json.loads(result.stdout)
        assert [c["check"] for c in checks] == ["echo", "query", "retrieve"]
        assert all(c["ok"] for c in checks), checks
        assert "instance " in checks[2]["detail"]
    assert not (tmp_path / "db").exists()  # the retrieve went into a temporary database


def test_ui_api_sets_every_dimse_option_and_the_default(tmp_path: Path) -> None:
    from tests.security.client_support import ui_api

    settings = tmp_path / "settings.toml"
    with ui_api(settings) as api:
        body = {
            "protocol": "dimse", "ae_title": "PACS", "host": "127.0.0.1", "port": 4242,
            "calling_ae": "ME", "timeout": 9, "move_destination": "STATION", "default": True,
        }  # fmt: skip
        saved = api.put("/api/servers/pacs", json=body)
        assert saved.status_code == 200, saved.text
        assert saved.json()["default"] is True and saved.json()["move_destination"] == "STATION"
        api.put("/api/servers/web", json={"url": "https://w.example/dw", "verify_tls": False})
        listed = {row["name"]: row for row in api.get("/api/servers").json()}
        assert listed["pacs"]["default"] and not listed["web"]["default"]
        unset = api.put("/api/servers/pacs", json={**body, "default": False})
        assert unset.json()["default"] is False
    loaded = Settings.load(settings)
    server = loaded.servers["pacs"]
    assert isinstance(server, DimseServer)
    assert (server.calling_ae, server.timeout, server.move_destination) == ("ME", 9.0, "STATION")
    web = loaded.servers["web"]
    assert isinstance(web, DicomWebServer) and web.verify_tls is False
    assert loaded.default_server == ""
