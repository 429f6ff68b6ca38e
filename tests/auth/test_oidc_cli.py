"""OIDC sign-in end to end: the CLI in a subprocess against a real provider (Authlib's server
components) and a DICOMweb server that accepts only that provider's valid bearer tokens.

Browser sign-in (PKCE) is driven by httpx following the authorize redirect to the CLI's
loopback listener; the device flow is approved at the provider's verification endpoint.
Tokens go to the keyring (keyrings.alt's file backend) or, without one, to a 0600 file,
never into the settings file, the output or the logs.
"""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.auth.conftest import SERIES, SLICES, Cli, Resource, hold_until_expired
from tests.auth.provider import Provider


def _read_until(proc: subprocess.Popen[str], cli: Cli, marker: str) -> str:
    """The first stderr line of ``proc`` containing ``marker`` (lines kept for leak checks)."""
    assert proc.stderr is not None
    for line in proc.stderr:
        cli.outputs.append(line)
        if marker in line:
            return line.strip()
    raise AssertionError(f"{marker!r} never printed; exit {proc.wait(30)}")


def _finish(proc: subprocess.Popen[str], cli: Cli) -> str:
    out, err = proc.communicate(timeout=60)
    cli.outputs += [out, err]
    assert proc.returncode == 0, err
    return out


def browser_login(cli: Cli, name: str) -> str:
    """``auth login NAME --no-browser``, the browser step done by httpx; its stdout."""
    proc = cli.start("auth", "login", name, "--no-browser", "--timeout", "60")
    url = _read_until(proc, cli, "/authorize?")
    assert "code_challenge_method=S256" in url and "code_challenge=" in url
    answer = httpx.get(url, follow_redirects=True, timeout=30)  # provider -> 302 -> loopback
    assert answer.status_code == 200 and "Signed in" in answer.text
    assert answer.url.host == "127.0.0.1" and answer.url.path == "/callback"
    return _finish(proc, cli)


def _no_token_leaked(cli: Cli, provider: Provider) -> None:
    secrets = provider.store.secrets()
    assert secrets
    settings = (cli.home / "settings.toml").read_text()
    for secret in secrets:
        assert secret not in settings
        for output in cli.outputs:
            assert secret not in output
    assert not any("Warning" in output for output in cli.outputs)  # nor library notices


def _tokens_kept(cli: Cli, provider: Provider) -> None:
    """Where the tokens are: the keyring, or a 0600 file holding the current refresh token."""
    token_file = cli.home / "settings.tokens.json"
    if cli.keyring:
        assert not token_file.exists()
        return
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    kept = token_file.read_text()
    assert any(t.refresh_token in kept for t in provider.store.tokens.values())


def test_browser_login_then_fetch_across_token_expiry(
    cli: Cli, provider: Provider, resource: Resource
) -> None:
    provider.store.lifetime = 2.0  # access tokens live 2 s; the server refuses expired ones
    cli.add_server("pacs", resource, provider)
    said = browser_login(cli, "pacs")
    assert "signed in to pacs" in said and "a refresh token" in said
    guard = resource.guard
    guard.hold = hold_until_expired(guard, at=4)  # the 4th series waits until its token expired

    fetched = cli.run("fetch", "pacs", resource.study_uid, "--concurrency", "1", "--json")

    assert fetched.returncode == 0, fetched.stderr
    report = json.loads(fetched.stdout)
    assert report["succeeded"] == SERIES * SLICES and not report["failed"]
    assert guard.retrieves >= SERIES
    after = guard.accepted[guard.held_at :]  # requests after the held one: new, valid tokens
    assert len(after) >= SERIES - 4 and guard.held not in after and not provider.valid(guard.held)
    held = provider.store.tokens  # every token the server accepted was valid when it arrived
    assert len(set(guard.accepted)) >= 2 and all(t in held for t in guard.accepted)
    assert "refresh_token" in provider.store.grants
    shown = cli.run("auth", "show")  # the global credentials, then each OIDC server
    assert shown.returncode == 0 and "server pacs: OIDC issuer" in shown.stdout
    shown = cli.run("auth", "show", "pacs")
    assert shown.returncode == 0 and "signed in; access token valid until" in shown.stdout
    assert "refresh token held" in shown.stdout
    assert ("OS keyring" if cli.keyring else "settings.tokens.json") in shown.stdout
    _tokens_kept(cli, provider)
    _no_token_leaked(cli, provider)


def test_device_login_on_a_headless_machine(
    cli: Cli, provider: Provider, resource: Resource
) -> None:
    cli.add_server("pacs", resource, provider)
    proc = cli.start("auth", "login", "pacs", "--device")
    _read_until(proc, cli, f"open {provider.issuer}/device")
    code = _read_until(proc, cli, "enter the code").rsplit(" ", 1)[1]
    approved = httpx.post(f"{provider.issuer}/device", data={"user_code": code}, timeout=30)
    assert approved.status_code == 200  # the user approves on "another device"
    assert "signed in to pacs" in _finish(proc, cli)
    assert provider.store.grants == ["urn:ietf:params:oauth:grant-type:device_code"]

    echo = cli.run("server", "echo", "pacs")

    assert echo.returncode == 0, echo.stderr
    assert resource.guard.accepted and resource.guard.refused == 0
    _tokens_kept(cli, provider)
    _no_token_leaked(cli, provider)


def test_revoked_sign_in_is_one_line_naming_the_server(
    tmp_path: Path, provider: Provider, resource: Resource
) -> None:
    cli = Cli(tmp_path, keyring=False)
    cli.add_server("pacs", resource, provider)
    browser_login(cli, "pacs")
    provider.revoke_everything()  # the session ended at the provider (admin, password change)

    fetched = cli.run("fetch", "pacs", resource.study_uid)

    assert fetched.returncode == 3
    errors = [line for line in fetched.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, fetched.stderr  # (the other stderr line is the progress bar)
    assert errors[0].startswith("error: OIDC token refresh on pacs: ")
    assert "invalid_grant" in errors[0] and "run `dicomstation auth login pacs`" in errors[0]
    assert "Traceback" not in fetched.stderr
    assert resource.guard.refused == 1  # the stored token was tried once, then the refresh failed
    _no_token_leaked(cli, provider)
    assert cli.run("server", "remove", "pacs").returncode == 0
    assert json.loads((cli.home / "settings.tokens.json").read_text()) == {}  # tokens forgotten


def test_logout_revokes_and_forgets_and_a_moved_server_has_no_tokens(
    tmp_path: Path, provider: Provider, resource: Resource
) -> None:
    pytest.importorskip("keyrings.alt.file")
    cli = Cli(tmp_path, keyring=True)
    cli.add_server("pacs", resource, provider)
    browser_login(cli, "pacs")
    moved = cli.run("server", "edit", "pacs", "--url", resource.url.replace("/dicom-web", "/x"))
    assert moved.returncode == 0  # same origin: still signed in
    assert "signed in;" in cli.run("auth", "show", "pacs").stdout

    out = cli.run("auth", "logout", "pacs")

    assert out.returncode == 0 and "refresh token revoked at the provider" in out.stdout
    assert all(t.refresh_revoked for t in provider.store.tokens.values())
    assert "not signed in" in cli.run("auth", "show", "pacs").stdout
    browser_login(cli, "pacs")
    port = resource.url.split(":")[2].split("/")[0]
    other = resource.url.replace(f":{port}/", f":{int(port) + 1}/")
    assert cli.run("server", "edit", "pacs", "--url", other).returncode == 0
    assert "not signed in" in cli.run("auth", "show", "pacs").stdout  # bound to the old origin
    _no_token_leaked(cli, provider)
