"""Settings file and ``server``/``auth`` CLI: no password printed, typed errors, links, 0600.

The real CLI (Typer's CliRunner) on a settings file in a temporary folder.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from dicomstation.config import Credentials, DicomWebServer, Secret
from dicomstation.settings import Settings
from tests.security.client_support import invoke_cli

PASSWORD = "pw-Secret-42"


def test_server_add_refuses_a_url_with_a_password(tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    url = f"https://alice:{PASSWORD}@pacs.example/dicom-web"
    run = invoke_cli(["server", "add", "pacs", "--url", url], config)
    assert run.code == 2
    assert "user/password" in run.stderr and "--password-stdin" in run.stderr
    assert PASSWORD not in run.stderr
    assert not config.exists()


def test_server_list_never_prints_a_password_from_a_hand_edited_url(tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    config.write_text(f'[servers.pacs]\nurl = "https://alice:{PASSWORD}@pacs.example/dw"\n')
    for args in (["server", "list"], ["server", "list", "--json"], ["query", "pacs"]):
        run = invoke_cli(args, config)
        assert run.code == 2, run.stderr
        assert PASSWORD not in run.stderr
        assert str(config) in run.stderr and "server 'pacs': url" in run.stderr


def test_cli_https_to_http_needs_allow_http(tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    add = ["server", "add", "pacs", "--url"]
    assert invoke_cli([*add, "https://pacs.example/dw"], config).code == 0
    refused = invoke_cli([*add, "http://pacs.example/dw"], config)
    assert refused.code == 2 and "--allow-http" in refused.stderr
    server = Settings.load(config).servers["pacs"]
    assert isinstance(server, DicomWebServer) and server.url.startswith("https://")
    assert invoke_cli([*add, "http://pacs.example/dw", "--allow-http"], config).code == 0


def test_server_list_shows_who_uses_the_global_credentials(tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    invoke_cli(["server", "add", "a", "--url", "https://a.example/dw"], config)
    invoke_cli(["server", "add", "b", "--url", "https://b.example/dw", "--use-global-auth"], config)
    rows = {
        r["name"]: r for r in json.loads(invoke_cli(["server", "list", "--json"], config).stdout)
    }
    assert rows["a"]["auth"] == "none" and rows["b"]["auth"] == "global"


WRONG = [
    (
        '[servers.old]\nprotocol = "dimse"\nae_title = "A"\nhost = "h"\nport = "abc"\n',
        "server 'old': port",
    ),
    ('[servers.pacs]\nurl = "https://h/dw"\ntimeout = [1]\n', "server 'pacs': timeout"),
    ('[servers.pacs]\nurl = "https://h/dw"\nverify_tls = "no"\n', "server 'pacs': verify_tls"),
    ("[servers.pacs]\nurl = 5\n", "server 'pacs': url"),
    ('servers = "pacs"\n', "servers must be a table"),
    ('[local]\nport = "abc"\n', "local.port"),
    (
        '[servers.pacs]\nurl = "https://h/dw"\n[servers.pacs.limits]\nmax_qido_bytes = -1\n',
        "limits",
    ),
    (
        '[servers.pacs]\nurl = "https://h/dw"\n[servers.pacs.limits]\nmax_qidos = 1\n',
        "limits.max_qidos",
    ),
    ('[servers.pacs]\nurl = "https://h/dw"\nproxy = 3\n', "server 'pacs': proxy"),
    ('[servers.pacs]\nurl = "https://h/dw"\nprotocol = "ftp"\n', "server 'pacs': protocol"),
    ("[auth]\npassword = 12345678\n", "auth.password"),
]


@pytest.mark.parametrize(("text", "key"), WRONG, ids=[k for _t, k in WRONG])
def test_a_value_of_the_wrong_type_is_one_clear_line(tmp_path: Path, text: str, key: str) -> None:
    config = tmp_path / "settings.toml"
    config.write_text(text)
    run = invoke_cli(["server", "list"], config)
    assert run.code == 2
    message = run.stderr.strip()
    assert "Traceback" not in message and len(message.splitlines()) <= 2, message  # rich may wrap
    assert str(config) in "".join(message.split()), message
    assert key in " ".join(message.split()), message
    assert "12345678" not in message  # a secret's value is never echoed


def test_saving_through_a_symlink_writes_its_target(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "dicomstation.toml"
    real.parent.mkdir()
    real.write_text("")
    os.chmod(real, 0o600)
    link = tmp_path / "cfg" / "settings.toml"
    link.parent.mkdir()
    link.symlink_to(real)
    assert invoke_cli(["server", "add", "pacs", "--url", "https://h.example/dw"], link).code == 0
    assert link.is_symlink() and link.resolve() == real
    assert "h.example" in real.read_text()
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    assert not list(real.parent.glob(".settings-*")) and not list(link.parent.glob(".settings-*"))


def test_settings_stay_private(tmp_path: Path) -> None:
    config = tmp_path / "new" / "settings.toml"
    run = invoke_cli(["auth", "set", "--user", "bob", "--password-stdin"], config)
    assert run.code == 2  # nothing on stdin: refused, nothing written
    assert not config.exists()
    from typer.testing import CliRunner

    from dicomstation.cli.main import app

    env = {"DICOMSTATION_CONFIG": str(config)}
    result = CliRunner().invoke(
        app, ["auth", "set", "--user", "bob", "--password-stdin"], input=PASSWORD + "\n", env=env
    )
    assert result.exit_code == 0 and PASSWORD not in result.output
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    invoke_cli(["server", "add", "pacs", "--url", "https://h.example/dw"], config)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("new_url", "kept"),
    [
        ("https://PACS.example:443/other", True),  # same origin: case and default port
        ("https://pacs.example:8443/dw", False),  # another port
        ("https://evil.example/dw", False),  # another host
        ("https://pacs.example.evil.example/dw", False),
        ("http://pacs.example/dw", False),  # another scheme (confirmed downgrade)
    ],
)
def test_a_secret_stays_only_with_its_origin(new_url: str, kept: bool) -> None:
    old = DicomWebServer(
        "pacs", "https://pacs.example/dw", Credentials(username="u", password=Secret(PASSWORD))
    )
    settings = Settings().with_server(old)
    bound = settings.servers["pacs"]
    assert isinstance(bound, DicomWebServer)
    assert bound.credentials.origin == "https://pacs.example:443"
    moved = replace(bound, url=new_url)
    after = settings.with_server(moved, allow_insecure_downgrade=True).server("pacs")
    assert isinstance(after, DicomWebServer)
    assert bool(after.credentials.password) is kept
    assert after.credentials.username == "u"
