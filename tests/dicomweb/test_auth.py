"""Auth flows against real servers on 127.0.0.1: Basic (Orthanc), bearer, OAuth2 refresh, TLS.

Also checks that secrets never reach logs, errors, reprs or progress events.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from dicomstation.auth import OAuth2ClientCredentials, auth_for, http_client
from dicomstation.config import Credentials, DicomWebServer, Secret
from dicomstation.database import Database
from dicomstation.errors import AuthenticationError, ConnectionFailedError
from dicomstation.models import Level, ProgressEvent, Query
from dicomstation.nodes import open_node
from dicomstation.nodes.dicomweb import DicomWebNode
from dicomstation.settings import Settings
from tests.dicomweb.conftest import STUDY
from tests.peers import OrthancServer, serving

CLIENT_SECRET = "client-secret-XYZZY"
TOKEN_PREFIX = "tok-SECRET-"


@dataclass
class TokenState:
    """What the tiny OAuth2 server issued and saw."""

    lifetime: int = 3600
    issued: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    resource_calls: int = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _AuthServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: object, ctype: str = "application/json") -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # the token endpoint
        state = self.server.state
        form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        expected = "Basic " + base64.b64encode(f"dicomstation:{CLIENT_SECRET}".encode()).decode()
        if self.headers.get("Authorization") != expected or form.get("grant_type") != [
            "client_credentials"
        ]:
            return self._send(401, {"error": "invalid_client"})
        token = f"{TOKEN_PREFIX}{len(state.issued)}"
        state.issued.append(token)
        self._send(
            200, {"access_token": token, "token_type": "Bearer", "expires_in": state.lifetime}
        )

    def do_GET(self) -> None:  # a protected QIDO-RS resource
        state = self.server.state
        state.resource_calls += 1
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in state.issued or token in state.revoked:
            return self._send(401, {"error": "invalid_token"})
        self._send(200, [], "application/dicom+json")


class _AuthServer(ThreadingHTTPServer):
    daemon_threads = True
    state: TokenState


@pytest.fixture()
def auth_server() -> Iterator[_AuthServer]:
    server = _AuthServer(("127.0.0.1", 0), _Handler)
    server.state = TokenState()
    with serving(server):
        yield server


def _oauth_server(srv: _AuthServer, url_path: str = "/dicom-web") -> DicomWebServer:
    host, port = srv.server_address[:2]
    base = f"http://{host!s}:{port}"
    creds = Credentials(
        token_url=base + "/token", client_id="dicomstation", client_secret=Secret(CLIENT_SECRET)
    )
    return DicomWebServer(name="cloud", url=base + url_path, credentials=creds)


def test_oauth2_token_cached_refreshed_and_renewed_on_401(auth_server: _AuthServer) -> None:
    now = [0.0]
    config = _oauth_server(auth_server)
    with DicomWebNode.from_config(config) as node:
        flow = node.client.auth
        assert isinstance(flow, OAuth2ClientCredentials)
        flow._clock = lambda: now[0]
        for _ in range(5):
            node.echo()
        assert auth_server.state.issued == [TOKEN_PREFIX + "0"]  # one token for many requests
        now[0] = 3600.0  # expired (leeway) -> renewed before use
        node.echo()
        assert len(auth_server.state.issued) == 2
        auth_server.state.revoked.add(TOKEN_PREFIX + "1")  # server-side revocation -> 401 -> renew
        node.echo()
        assert len(auth_server.state.issued) == 3


def test_oauth2_bad_client_secret_is_an_authentication_error(
    auth_server: _AuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = _oauth_server(auth_server)
    wrong = Credentials(
        token_url=config.credentials.token_url,
        client_id="dicomstation",
        client_secret=Secret("wrong-secret-QQQ"),
    )
    node = DicomWebNode.from_config(DicomWebServer("cloud", config.url, wrong))
    with node, pytest.raises(AuthenticationError, match="invalid_client") as info:
        node.echo()
    assert "wrong-secret-QQQ" not in str(info.value) + caplog.text + repr(node.client.auth)


def test_bearer_token(auth_server: _AuthServer) -> None:
    auth_server.state.issued.append("static-token")
    config = _oauth_server(auth_server)
    static = DicomWebServer("cloud", config.url, Credentials(token=Secret("static-token")))
    with DicomWebNode.from_config(static) as node:
        node.echo()
    bad = DicomWebServer("cloud", config.url, Credentials(token=Secret("nope-token")))
    with DicomWebNode.from_config(bad) as node, pytest.raises(AuthenticationError) as info:
        node.echo()
    assert "nope-token" not in str(info.value)


def test_precedence_token_then_oauth_then_basic() -> None:
    both = Credentials(
        username="u", password=Secret("p"), token=Secret("t"), token_url="http://x/t", client_id="c"
    )
    assert type(auth_for(both)).__name__ == "BearerAuth"
    assert (
        type(auth_for(Credentials(username="u", token_url="http://x/t", client_id="c"))).__name__
        == "OAuth2ClientCredentials"
    )
    assert type(auth_for(Credentials(username="u"))).__name__ == "BasicAuth"
    assert auth_for(Credentials()) is None


@pytest.mark.orthanc
def test_basic_auth_and_global_credentials(orthanc: OrthancServer, tmp_path: Path) -> None:
    settings = Settings(
        servers={"o": DicomWebServer("o", orthanc.dicomweb_url, use_global_auth=True)},
        credentials=Credentials(username=orthanc.user, password=Secret(orthanc.password)),
    )
    with open_node(settings.server("o")) as node:  # type: ignore[attr-defined]
        assert node.echo() >= 0
    wrong = DicomWebServer(
        "o", orthanc.dicomweb_url, Credentials(username=orthanc.user, password=Secret("bad-pw-777"))
    )
    with DicomWebNode.from_config(wrong) as node, pytest.raises(AuthenticationError) as info:
        node.find(Query(Level.STUDY))
    assert info.value.status == 401 and "bad-pw-777" not in str(info.value)


@pytest.mark.orthanc
def test_secrets_never_logged_or_shown(
    loaded_orthanc: OrthancServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    events: list[ProgressEvent] = []
    config = DicomWebServer(
        "o",
        loaded_orthanc.dicomweb_url,
        Credentials(username=loaded_orthanc.user, password=Secret(loaded_orthanc.password)),
    )
    with DicomWebNode.from_config(config) as node, Database.temporary() as db:
        node.retrieve(STUDY, into=db, progress=events.append)
        node.find(Query(Level.STUDY))
        text = caplog.text + repr(node) + repr(node.client.auth) + repr(config) + repr(events)
    assert caplog.text  # httpx did log the requests
    assert loaded_orthanc.password not in text
    encoded = base64.b64encode(f"{loaded_orthanc.user}:{loaded_orthanc.password}".encode())
    assert encoded.decode() not in text


# -- TLS ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    server = _AuthServer(("127.0.0.1", 0), _Handler)
    server.state = TokenState(issued=["tls-token"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/dicom-web", cert
    server.shutdown()
    server.server_close()


def test_tls_verification_and_ca_bundle(tls_server: tuple[str, Path]) -> None:
    url, cert = tls_server
    creds = Credentials(token=Secret("tls-token"))
    with (
        DicomWebNode.from_config(DicomWebServer("tls", url, creds)) as node,
        pytest.raises(ConnectionFailedError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        node.echo()
    with DicomWebNode.from_config(DicomWebServer("tls", url, creds, ca_bundle=str(cert))) as node:
        node.echo()
    with DicomWebNode.from_config(DicomWebServer("tls", url, creds, verify_tls=False)) as node:
        node.echo()


def test_proxy_setting_is_used(auth_server: _AuthServer) -> None:
    """Requests go through the configured proxy (here: our fault proxy, transparent)."""
    from tests.dicomweb.faultproxy import FaultProxy

    auth_server.state.issued.append("proxy-token")
    config = _oauth_server(auth_server)
    with FaultProxy(config.url) as proxy:
        server = DicomWebServer(
            "p",
            config.url,
            Credentials(token=Secret("proxy-token")),
            proxy=proxy.url.rsplit("/dicom-web", 1)[0],
        )
        client = http_client(server)
        with DicomWebNode("p", server.url, client) as node:
            node.echo()
        assert proxy.faults.requests, "the proxy saw no request"
