"""The loopback UI needs its per-launch token on every request (issue 10: "the UI API hands
stored passwords to any URL ... the loopback UI has no auth, so any local process can do this").

Attacks: a local process without the token reads patient data, changes a server's
settings, deletes a study; a page of another origin rides on the browser's cookie.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dicomstation.config import Secret
from dicomstation.database import Database
from dicomstation.errors import ConfigError
from dicomstation.models import Level, Query
from dicomstation.server import ServerOptions, start_in_thread
from dicomstation.server.access import cookie_name
from dicomstation.server.running import free_port
from dicomstation.web import Workstation, create_ui_app
from tests.security.http_support import Station, cli_env, run_cli, station

TOKEN = "launch-token-for-the-test-0123456789"
GUARDED = (
    ("GET", "/api/servers"),
    ("GET", "/api/servers/local/studies"),
    ("GET", "/api/jobs"),
    ("PUT", "/api/servers/pacs"),
    ("POST", "/api/send"),
    ("DELETE", "/api/local/{study}"),
    ("GET", "/dicom-web/studies"),
    ("GET", "/dicom-web/studies/{study}/metadata"),
    ("POST", "/dicom-web/studies"),
    ("GET", "/static/app.js"),
)


@pytest.fixture()
def ui(tmp_path: Path) -> Iterator[Station]:
    with station(tmp_path, ServerOptions(token=Secret(TOKEN))) as running:
        yield running


def _call(st: Station, method: str, path: str, **kwargs: object) -> httpx.Response:
    body = {"url": "http://evil.example/dicom-web"} if method == "PUT" else None
    return httpx.request(
        method, st.url + path.format(study=st.study_uid), json=body, timeout=10, **kwargs
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(("method", "path"), GUARDED)
def test_every_route_needs_the_token(ui: Station, method: str, path: str) -> None:
    assert _call(ui, method, path).status_code == 401
    assert _call(ui, method, path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert _call(ui, method, path, params={"token": TOKEN[:-1]}).status_code == 401
    assert ui.ws.db.find(Query(Level.STUDY)), "nothing was deleted"
    assert "pacs" not in ui.ws.settings().servers, "no server was saved"


def test_the_token_as_header_query_or_cookie(ui: Station) -> None:
    url = f"{ui.url}/dicom-web/studies"
    for scheme in ("Bearer", "token"):
        assert httpx.get(url, headers={"Authorization": f"{scheme} {TOKEN}"}).status_code == 200
    assert httpx.get(url, params={"token": TOKEN}).status_code == 200
    api = httpx.get(f"{ui.url}/api/servers/local/studies", params={"token": TOKEN})
    assert api.status_code == 200 and api.json()["items"]
    cookie = {cookie_name(ui.running.port): TOKEN}
    assert httpx.get(url, cookies=cookie).status_code == 200
    assert httpx.get(url, cookies={cookie_name(ui.running.port + 1): TOKEN}).status_code == 401


def test_login_url_sets_a_strict_httponly_cookie_and_drops_the_token(ui: Station) -> None:
    page = httpx.get(f"{ui.url}/")
    assert page.status_code == 401 and "token" in page.text and TOKEN not in page.text
    login = httpx.get(f"{ui.url}/", params={"token": TOKEN})
    assert login.status_code == 303 and login.headers["location"] == "/"
    set_cookie = login.headers["set-cookie"]
    assert set_cookie.startswith(f"{cookie_name(ui.running.port)}={TOKEN};")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/"):
        assert attribute.lower() in set_cookie.lower()
    assert "secure" not in set_cookie.lower()  # plain http on loopback (see test_http_tls)
    index = httpx.get(f"{ui.url}/", cookies=login.cookies)
    assert index.status_code == 200 and "app.js" in index.text


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # another port of 127.0.0.1 is "same-site"
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
    ],
)
def test_the_cookie_is_not_honoured_for_other_origins(ui: Station, headers: dict) -> None:
    cookie = {cookie_name(ui.running.port): TOKEN}
    read = httpx.get(f"{ui.url}/api/servers/local/studies", cookies=cookie, headers=headers)
    assert read.status_code == 401
    delete = httpx.delete(f"{ui.url}/api/local/{ui.study_uid}", cookies=cookie, headers=headers)
    assert delete.status_code in (401, 403)
    assert ui.ws.db.find(Query(Level.STUDY))
    same = {"Sec-Fetch-Site": "same-origin", "Origin": ui.url}
    assert httpx.get(f"{ui.url}/api/jobs", cookies=cookie, headers=same).status_code == 200


def test_cross_origin_writes_are_refused_even_without_a_token(tmp_path: Path) -> None:
    """--no-token (trusted single-user machine) still refuses a foreign page's writes."""
    with station(tmp_path, ServerOptions()) as st:
        headers = {"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"}
        response = httpx.delete(f"{st.url}/api/local/{st.study_uid}", headers=headers)
        assert response.status_code == 403
        assert st.ws.db.find(Query(Level.STUDY))
        assert httpx.get(f"{st.url}/api/jobs").status_code == 200


def test_create_ui_app_makes_a_token_when_given_no_options(tmp_path: Path) -> None:
    with Database.temporary() as db:
        app = create_ui_app(Workstation(db, tmp_path / "settings.toml"))
        token = app.state.options.token.reveal()
        assert len(token) >= 40
        running = start_in_thread(app)
        try:
            assert httpx.get(f"{running.url}/api/servers").status_code == 401
            headers = {"Authorization": f"Bearer {token}"}
            assert httpx.get(f"{running.url}/api/servers", headers=headers).status_code == 200
        finally:
            running.stop()
        other = create_ui_app(Workstation(db, tmp_path / "settings.toml"))
        assert other.state.options.token.reveal() != token, "one token per launch"


def test_ui_command_prints_the_tokenized_url(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicomstation.cli.main", "ui", "--port", str(port)],
        env=cli_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        found = re.fullmatch(rf"UI: (http://127\.0\.0\.1:{port})/\?token=([\w-]{{40,}})\n", first)
        assert found, first
        root, token = found.groups()
        assert "Bearer" in proc.stdout.readline()
        for _attempt in range(100):  # the line is printed just before uvicorn binds
            try:
                denied = httpx.get(f"{root}/dicom-web/studies", timeout=5)
                break
            except httpx.ConnectError:
                proc.poll()
                assert proc.returncode is None
                time.sleep(0.1)
        assert denied.status_code == 401
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{root}/dicom-web/studies", headers=headers).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cors", "*", "--no-token"], "refusing CORS origin '*' without a token"),
        (["--cors", "*", "--username", "alice"], "cannot be combined with Basic"),
        (["--host", "0.0.0.0", "--no-token"], "requires Basic"),
        (["--tls-cert", "cert.pem"], "TLS needs both --tls-cert and --tls-key"),
    ],
)
def test_ui_refuses_unsafe_options(tmp_path: Path, args: list[str], message: str) -> None:
    done = run_cli(tmp_path, "ui", "--port", "1", *args, stdin="pw\n")
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and message in errors[0], errors
    assert "Traceback" not in done.stderr


def test_cors_star_needs_the_token() -> None:
    with pytest.raises(ConfigError, match="without a token"):
        ServerOptions(cors_origins=("*",)).check()
    ServerOptions(cors_origins=("*",), token=Secret(TOKEN)).check()
