"""OidcAuth in process, against the real provider and the bearer-protected DICOMweb server:
renewal on a 401, one renewal shared by concurrent requests, rotated refresh tokens stored by
another process, origin checks, the 0600 token file, and Authlib kept out of start-up."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.oauth2.rfc8628 import DeviceCodeGrant

from dicomstation.auth_oidc import OidcConfig, TokenVault, vault_for
from dicomstation.auth_oidc.flow import OidcAuth
from dicomstation.auth_oidc.login import DevicePrompt, login_browser, login_device
from dicomstation.auth_oidc.provider import check_issuer, discover
from dicomstation.config import Credentials, DicomWebServer, Secret
from dicomstation.errors import AuthenticationError, ConfigError, RemoteStatusError
from dicomstation.models import Level, Query
from dicomstation.nodes import open_node
from dicomstation.secret_store import FileStore, KeyringStore
from dicomstation.settings import Settings
from tests.auth.conftest import Resource
from tests.auth.provider import CLIENT_ID, CONFIDENTIAL_ID, CONFIDENTIAL_SECRET, Provider

_PROVIDER_LOGS = ("authlib.oauth2.rfc", "authlib.oidc")


def _drive_browser(url: str) -> None:
    answer = httpx.get(url, follow_redirects=True, timeout=30)
    assert answer.status_code == 200


def _signed_in(
    tmp_path: Path, provider: Provider, url: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[DicomWebServer, OidcConfig, TokenVault]:
    """A server from the settings (0600 token file), signed in through the browser flow."""
    monkeypatch.setenv("DICOMSTATION_KEYRING", "file")
    creds = Credentials(issuer=provider.issuer, client_id=CLIENT_ID, scope="openid dicomweb")
    path = (
        Settings()
        .with_server(DicomWebServer("pacs", url, credentials=creds))
        .save(tmp_path / "settings.toml", None)
    )
    server = Settings.load(path, None).server("pacs")
    assert isinstance(server, DicomWebServer)
    config = OidcConfig.for_server(server, True)
    vault = vault_for(server, config)
    vault.save(login_browser(config, _drive_browser, timeout=30))
    return server, config, vault


def test_a_401_renews_once_and_resends_and_nothing_is_logged(
    tmp_path: Path,
    provider: Provider,
    resource: Resource,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, _, vault = _signed_in(tmp_path, provider, resource.url, monkeypatch)
    provider.revoke_access_tokens()  # still "fresh" here, refused by the server
    caplog.set_level(logging.DEBUG)

    with open_node(server) as node:
        studies = node.find(Query(Level.STUDY))
        auth = node.client.auth  # type: ignore[attr-defined]

    assert [s.study_uid for s in studies] == [resource.study_uid]  # type: ignore[union-attr]
    assert isinstance(auth, OidcAuth) and auth.refreshes == 1
    assert resource.guard.refused == 1 and provider.store.grants[-1] == "refresh_token"
    stored = vault.load()
    assert stored is not None and provider.valid(stored.access_token.reveal())
    ours = [  # the provider here is Authlib's server grants, which log what they issue
        caplog.handler.format(r) for r in caplog.records if not r.name.startswith(_PROVIDER_LOGS)
    ]
    shown = "\n".join(ours) + repr(server) + repr(auth) + repr(vault)
    for secret in provider.store.secrets():
        assert secret not in shown
    assert "access token renewed" in caplog.text


def test_concurrent_requests_share_one_renewal(
    tmp_path: Path, provider: Provider, resource: Resource, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider.store.lifetime = 1.0
    _, config, vault = _signed_in(tmp_path, provider, resource.url, monkeypatch)
    auth = OidcAuth(config, vault)
    first = auth.access_token()
    _wait_expired(provider, first)
    got: list[Secret] = []
    threads = [threading.Thread(target=lambda: got.append(auth.access_token())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(got) == 8 and len(set(got)) == 1 and first not in got
    assert provider.store.grants.count("refresh_token") == 1 and auth.refreshes == 1


def _wait_expired(provider: Provider, token: Secret) -> None:
    deadline = time.monotonic() + 10
    while provider.valid(token.reveal()) and time.monotonic() < deadline:
        time.sleep(0.02)  # polling for the expiry event, bounded
    assert not provider.valid(token.reveal())


def test_a_refresh_token_rotated_by_another_process_is_picked_up(
    tmp_path: Path, provider: Provider, resource: Resource, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider.store.lifetime = 1.0
    _, config, vault = _signed_in(tmp_path, provider, resource.url, monkeypatch)
    ours, theirs = OidcAuth(config, vault), OidcAuth(config, vault)
    old = ours.access_token()  # kept in memory here, with the first refresh token
    assert ours.access_token(stale=old) != old  # the server refused it: the store had no other
    assert ours.refreshes == 1
    mine = ours.access_token()
    renewed = theirs.access_token(stale=mine)  # "another process" renews: ours is spent
    assert theirs.refreshes == 1
    _wait_expired(provider, renewed)

    token = ours.access_token()  # ours is refused (rotated): the stored one is used instead

    assert token not in (old, mine, renewed) and provider.valid(token.reveal())
    assert provider.store.grants.count("refresh_token") == 3 and ours.refreshes == 2


def test_tokens_are_bound_to_issuer_server_and_client(
    tmp_path: Path, provider: Provider, resource: Resource, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, config, vault = _signed_in(tmp_path, provider, resource.url, monkeypatch)
    assert vault.load() is not None
    b = config.binding
    for moved in (
        type(b)(b.server, b.issuer, "https://other.example:443", b.client_id),  # server moved
        type(b)(b.server, "https://idp.example", b.origin, b.client_id),  # another issuer
        type(b)(b.server, b.issuer, b.origin, "another-client"),  # another client
    ):
        assert TokenVault(vault.store, moved).load() is None


def test_a_confidential_client_signs_in_with_its_secret_from_the_keyring(
    tmp_path: Path, provider: Provider, resource: Resource, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyrings_file = pytest.importorskip("keyrings.alt.file")
    backend = keyrings_file.PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")  # this backend object only
    store = KeyringStore(backend, "dicomstation:test")
    monkeypatch.setenv("DICOMSTATION_KEYRING", "file")  # tokens: the 0600 file
    secret = Secret(CONFIDENTIAL_SECRET)
    creds = Credentials(issuer=provider.issuer, client_id=CONFIDENTIAL_ID, client_secret=secret)
    server = DicomWebServer("pacs", resource.url, credentials=creds)
    path = Settings().with_server(server).save(tmp_path / "settings.toml", store)
    assert CONFIDENTIAL_SECRET not in path.read_text()
    loaded = Settings.load(path, store).server("pacs")
    assert isinstance(loaded, DicomWebServer)
    config = OidcConfig.for_server(loaded, True)

    def approve(prompt: DevicePrompt) -> None:
        data = {"user_code": prompt.user_code}
        assert httpx.post(f"{provider.issuer}/device", data=data, timeout=30).status_code == 200

    vault_for(loaded, config).save(login_device(config, approve, sleep=lambda s: None))
    provider.revoke_access_tokens()
    with open_node(loaded) as node:
        assert node.find(Query(Level.STUDY))  # renewed on the 401, authenticated with the secret

    assert provider.store.grants == [DeviceCodeGrant.GRANT_TYPE, "refresh_token"]
    assert provider.store.auth_methods == ["client_secret_basic"] * 2
    wrong = replace(config, client_secret=Secret("not-the-secret"))
    with pytest.raises(AuthenticationError, match="invalid_client"):
        login_device(wrong, approve, sleep=lambda s: None)


def test_the_loopback_listener_takes_only_our_answer(provider: Provider) -> None:
    config = OidcConfig("pacs", "http://127.0.0.1:1", provider.issuer, CLIENT_ID, scope="openid")
    strays: list[int] = []

    def browser(url: str) -> None:
        query = parse_qs(urlsplit(url).query)
        redirect, state = query["redirect_uri"][0], query["state"][0]
        assert urlsplit(redirect).hostname == "127.0.0.1"
        idle = socket.create_connection(("127.0.0.1", urlsplit(redirect).port or 0), timeout=5)
        strays.append(0)  # a browser's preconnect that sends nothing must not hold the rest
        for target, params in (
            (redirect, {"code": "forged", "state": "not-ours"}),  # another page or process
            (redirect, {"code": "forged"}),
            (redirect.replace("/callback", "/other"), {"code": "forged", "state": state}),
        ):
            strays.append(httpx.get(target, params=params, timeout=5).status_code)
        _drive_browser(url)
        idle.close()

    tokens = login_browser(config, browser, timeout=30)

    assert strays == [0, 400, 400, 400] and provider.valid(tokens.access_token.reveal())
    assert provider.store.grants == ["authorization_code"]


def test_a_refused_consent_is_one_line(provider: Provider) -> None:
    provider.store.deny = True
    config = OidcConfig("pacs", "http://127.0.0.1:1", provider.issuer, CLIENT_ID, scope="openid")

    def browser(url: str) -> None:
        answer = httpx.get(url, follow_redirects=True, timeout=30)
        assert answer.status_code == 400 and "Sign-in failed" in answer.text

    with pytest.raises(
        AuthenticationError, match="OIDC sign-in on pacs: the provider refused"
    ) as e:
        login_browser(config, browser, timeout=30)
    assert "access_denied" in str(e.value) and "\n" not in str(e.value)
    assert not provider.store.tokens


def test_discovery_must_name_the_configured_issuer(provider: Provider) -> None:
    alias = provider.issuer.replace("127.0.0.1", "localhost")
    config = OidcConfig("pacs", "http://127.0.0.1:1", alias, CLIENT_ID)
    with pytest.raises(RemoteStatusError, match="names issuer"):
        discover(config)
    with pytest.raises(ConfigError, match="must be an https:// URL"):
        check_issuer("pacs", "http://idp.example/realms/x")
    assert check_issuer("pacs", "https://idp.example/realms/x/") == "https://idp.example/realms/x"


def test_the_token_file_is_private(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "conf" / "settings.tokens.json")
    store.set("a", "1")
    store.set("b", "2")
    store.delete("a")
    assert store.get("b") == "2" and store.get("a") is None
    assert (store.path.stat().st_mode & 0o777) == 0o600
    assert (store.path.parent.stat().st_mode & 0o777) == 0o700
    store.path.chmod(0o644)
    with pytest.raises(ConfigError, match="can be read by others"):
        store.get("b")


_PROBE = """
import json, sys
sys.argv = ["dicomstation", *json.loads(sys.argv[1])]
from dicomstation.cli.main import app
try:
    app()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "authlib")))
"""


@pytest.mark.parametrize("argv", [["--help"], ["auth", "--help"], ["server", "list"]])
def test_authlib_is_not_imported_until_oidc_is_used(tmp_path: Path, argv: list[str]) -> None:
    env = {"DICOMSTATION_CONFIG": str(tmp_path / "s.toml"), "DICOMSTATION_KEYRING": "file"}
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argv)],
        capture_output=True, text=True, timeout=120, check=True,
        env={**os.environ, **env},
    )  # fmt: skip
    assert json.loads(run.stdout.strip().splitlines()[-1]) == []


def test_loading_authlib_leaves_the_warning_filters_alone() -> None:
    script = (
        "import warnings\n"
        "before = list(warnings.filters)\n"
        "from dicomstation.auth_oidc.provider import authlib\n"
        "authlib()\n"
        "import authlib.deprecate\n"  # its module-level 'always' filter came and went with it
        "assert list(warnings.filters) == before, warnings.filters[:3]\n"
        "print('same')\n"
    )
    run = subprocess.run(
        [sys.executable, "-W", "default", "-c", script],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0 and run.stdout.strip() == "same", run.stderr
    assert "httpx2" not in run.stderr  # Authlib's notice about its preferred HTTP package: silenced
