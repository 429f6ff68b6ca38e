"""Secrets in a real keyring backend (keyrings.alt's file backend, headless), else the file.

The backend object is passed explicitly to Settings (API tests) or named through
keyring's own PYTHON_KEYRING_BACKEND variable in the CLI's environment; no test and
no library code sets keyring's process-wide backend.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import termios
import time
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dicomstation.cli.common import ExitCode
from dicomstation.cli.main import app
from dicomstation.config import Credentials, DicomWebServer, Secret
from dicomstation.errors import ConfigError
from dicomstation.secret_store import KeyringStore
from dicomstation.settings import Settings

keyrings_file = pytest.importorskip("keyrings.alt.file")

SECRET = "kr-S3cret-9"
URL = "https://pacs.example/dicom-web"


@pytest.fixture()
def store(tmp_path: Path) -> KeyringStore:
    backend = keyrings_file.PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")  # this backend object only
    return KeyringStore(backend, "dicomstation:test")


def _settings() -> Settings:
    creds = Credentials(username="ann", password=Secret(SECRET))
    server = DicomWebServer("pacs", URL, credentials=creds)
    return (
        Settings(deid_key=Secret("deid-" + SECRET))
        .with_server(server)
        .with_credentials(Credentials(username="g", token=Secret("tok-" + SECRET)))
    )


def test_secrets_go_to_the_keyring_not_the_file(tmp_path: Path, store: KeyringStore) -> None:
    path = _settings().save(tmp_path / "settings.toml", store)
    text = path.read_text()
    assert SECRET not in text  # neither password, token nor deid key
    data = tomllib.loads(text)
    assert data["servers"]["pacs"]["keyring"] == ["password"]
    assert data["auth"]["keyring"] == ["token"] and data["deid"]["keyring"] == ["key"]
    loaded = Settings.load(path, store)
    server = loaded.server("pacs")
    assert isinstance(server, DicomWebServer)
    assert server.credentials.password.reveal() == SECRET
    assert loaded.credentials.token.reveal() == "tok-" + SECRET
    assert loaded.deid_key.reveal() == "deid-" + SECRET
    no_keyring = Settings.load(path, None)  # the keyring gone: no secret, no crash
    assert not no_keyring.credentials.token and not no_keyring.deid_key


def test_keyring_entries_are_bound_to_the_origin(tmp_path: Path, store: KeyringStore) -> None:
    path = _settings().save(tmp_path / "settings.toml", store)
    text = path.read_text()
    moved = text.replace("pacs.example", "evil.example")  # URL and origin edited by hand
    path.write_text(moved)
    server = Settings.load(path, store).server("pacs")
    assert isinstance(server, DicomWebServer) and not server.credentials.password


def test_removed_servers_and_cleared_secrets_leave_the_keyring(
    tmp_path: Path, store: KeyringStore
) -> None:
    path = _settings().save(tmp_path / "settings.toml", store)
    entry = "server:pacs|https://pacs.example:443|password"
    assert store.get(entry) == SECRET
    Settings.load(path, store).without_server("pacs").save(path, store)
    assert store.get(entry) is None
    Settings.load(path, store).with_credentials(Credentials()).save(path, store)
    assert store.get("auth||token") is None
    assert store.get("deid||key") == "deid-" + SECRET


def _cli_env(tmp_path: Path, keyring: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_KEYRING_BACKEND"}
    env |= {
        "DICOMSTATION_CONFIG": str(tmp_path / "settings.toml"),
        "DICOMSTATION_DB": str(tmp_path / "db"),
        "XDG_DATA_HOME": str(tmp_path / "xdg"),  # where keyrings.alt keeps its file
    }
    if keyring:
        env["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
    else:
        env["DICOMSTATION_KEYRING"] = "file"
    return env


def _cli(env: dict[str, str], *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dicomstation.cli.main", *argv]
    return subprocess.run(
        command, input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.mark.parametrize("keyring", [True, False])
def test_cli_keeps_secrets_where_auth_show_says(tmp_path: Path, keyring: bool) -> None:
    env = _cli_env(tmp_path, keyring)
    added = _cli(env, "server", "add", "pacs", "--url", URL, "--user", "ann", "--password-stdin",
                 stdin=SECRET + "\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    shown = _cli(env, "auth", "show")
    assert shown.returncode == 0, shown.stderr
    in_file = SECRET in (tmp_path / "settings.toml").read_text()
    if keyring:
        assert "OS keyring (" in shown.stdout and not in_file
        assert (tmp_path / "xdg").exists()
    else:
        assert "settings file" in shown.stdout and "no OS keyring" in shown.stdout and in_file
    assert SECRET not in shown.stdout + shown.stderr


def test_the_null_keyring_keeps_secrets_in_the_file(tmp_path: Path) -> None:
    """keyring's null backend (how poetry users switch keyring off) is no keyring, not a sink."""
    env = _cli_env(tmp_path, keyring=False)
    del env["DICOMSTATION_KEYRING"]
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    added = _cli(env, "server", "add", "pacs", "--url", URL, "--user", "ann", "--password-stdin",
                 stdin=SECRET + "\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    shown = _cli(env, "auth", "show")
    assert "no OS keyring" in shown.stdout and "not in the keyring" not in shown.stderr
    server = Settings.load(tmp_path / "settings.toml", None).server("pacs")
    assert isinstance(server, DicomWebServer) and server.credentials.password.reveal() == SECRET


class _ForgetfulKeyring:
    """A backend that accepts every secret and keeps none (a locked or read-only store).

    Duck-typed, not a ``keyring.backend.KeyringBackend`` subclass: keyring registers
    every subclass as a candidate for its process-wide backend when it is defined.
    """

    name = "forgetful"

    def get_password(self, service: str, username: str) -> str | None:
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        return None

    def delete_password(self, service: str, username: str) -> None:
        return None


def test_a_keyring_that_keeps_nothing_is_an_error_and_the_file_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    Settings().with_server(DicomWebServer("old", URL)).save(path, None)
    before = path.read_bytes()
    with pytest.raises(ConfigError) as info:
        creds = Credentials(username="ann", password=Secret(SECRET))
        settings = Settings().with_server(DicomWebServer("pacs", URL, credentials=creds))
        settings.save(path, KeyringStore(_ForgetfulKeyring(), "dicomstation:test"))
    message = str(info.value)
    assert "server:pacs's password" in message and "DICOMSTATION_KEYRING=file" in message
    assert SECRET not in message and "\n" not in message
    assert path.read_bytes() == before  # the file never names a secret the keyring lost


def test_auth_set_user_without_a_terminal_is_refused(tmp_path: Path) -> None:
    env = _cli_env(tmp_path, keyring=False)
    done = _cli(env, "auth", "set", "--user", "ann")
    assert done.returncode == ExitCode.USAGE and "--password-stdin" in done.stderr
    assert not (tmp_path / "settings.toml").exists()


def _read_until(fd: int, wanted: bytes, deadline: float) -> bytes:
    seen = b""
    while wanted not in seen.lower() and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.5)[0]:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_auth_set_user_prompts_hidden_on_a_terminal(tmp_path: Path) -> None:
    env = _cli_env(tmp_path, keyring=False)
    command = [sys.executable, "-m", "dicomstation.cli.main", "auth", "set", "--user", "ann"]
    pid, master = pty.fork()  # the child's controlling terminal is the pty (getpass uses it)
    if pid == 0:  # pragma: no cover - the child
        os.execve(command[0], command, env)
    deadline = time.monotonic() + 60
    seen = _read_until(master, b"password", deadline)
    while termios.tcgetattr(master)[3] & termios.ECHO and time.monotonic() < deadline:
        time.sleep(0.05)  # typed before getpass turns echo off, input would be flushed
    os.write(master, (SECRET + "\n").encode())
    seen += _read_until(master, b"saved", deadline)
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    if done[0] == 0:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail(f"auth set did not finish: {seen!r}")
    status = done[1]
    os.close(master)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert SECRET.encode() not in seen  # hidden: not echoed
    loaded = Settings.load(tmp_path / "settings.toml", None)
    assert loaded.credentials.username == "ann"
    assert loaded.credentials.password.reveal() == SECRET


def test_cli_runner_is_not_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DICOMSTATION_CONFIG", str(tmp_path / "s.toml"))
    monkeypatch.setenv("DICOMSTATION_KEYRING", "file")
    result = CliRunner().invoke(app, ["server", "add", "w", "--url", URL, "--user", "bob"])
    assert result.exit_code == ExitCode.USAGE and "--password-stdin" in result.stderr
