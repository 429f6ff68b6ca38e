"""Answers that httpx reads whole are capped: a peer cannot make the client hold 64 MiB.

httpx reads some answers whole whatever we ask: each intermediate answer of an auth
flow (the 401 before a token is renewed), a token endpoint's answer, a non-streamed
request's answer (the UPS-RS worklist client). Before, a hostile peer's 64 MiB there
was held whole. Our hostile server (127.0.0.1) sends them lazily; Python's
allocations are traced while the real client reads.
"""

from __future__ import annotations

import pytest

from dicomstation.auth import MAX_TOKEN_ANSWER, http_client
from dicomstation.config import Credentials, DicomWebServer, Secret
from dicomstation.errors import AuthenticationError, DicomStationError, RemoteStatusError
from dicomstation.models import Level, Query
from dicomstation.nodes.dicomweb import DicomWebNode
from dicomstation.pipeline.ups_worker import MAX_ANSWER_BYTES, UpsClient
from tests.security.client_support import HostileServer, Reply, Seen, json_reply, peak_mib

MB = 1 << 20
_PIECE = b" " * MB


def _huge(status: int, megabytes: int = 64, declared: bool = True) -> Reply:
    headers = {"Content-Type": "application/json"}
    if declared:
        headers["Content-Length"] = str(megabytes * MB)
    return Reply(status, headers, (_PIECE for _ in range(megabytes)))


def _oauth_server(url: str) -> DicomWebServer:
    creds = Credentials(token_url=f"{url}/token", client_id="c", client_secret=Secret("s"))
    return DicomWebServer("hostile", f"{url}/dicom-web", creds)


def _find(config: DicomWebServer) -> None:
    with DicomWebNode.from_config(config) as node:
        node.find(Query(Level.STUDY))


def _token(seen: Seen) -> Reply:
    return json_reply({"access_token": "tok", "token_type": "Bearer", "expires_in": 3600})


@pytest.mark.parametrize("declared", [True, False], ids=["length", "chunked"])
def test_a_401_with_a_huge_body_in_an_auth_flow(declared: bool) -> None:
    def behaviour(seen: Seen) -> Reply:
        return _token(seen) if seen.path.startswith("/token") else _huge(401, declared=declared)

    with HostileServer(behaviour) as server:
        peak, raised = peak_mib(lambda: _find(_oauth_server(server.url)))
    assert isinstance(raised, DicomStationError), raised
    assert "\n" not in str(raised) and "hostile" in str(raised)
    assert peak < 16, f"{peak:.0f} MiB held for a refused 401"


def test_a_huge_token_answer() -> None:
    def behaviour(seen: Seen) -> Reply:
        return _huge(200) if seen.path.startswith("/token") else json_reply([])

    with HostileServer(behaviour) as server:
        peak, raised = peak_mib(lambda: _find(_oauth_server(server.url)))
    assert isinstance(raised, AuthenticationError), raised
    assert f"token endpoint answer longer than {MAX_TOKEN_ANSWER} bytes" in str(raised)
    assert peak < 16, f"{peak:.0f} MiB held for a refused token answer"


def test_a_huge_worklist_answer() -> None:
    with HostileServer(lambda seen: _huge(200, 64, declared=False)) as server:
        worklist = DicomWebServer("worklist", f"{server.url}/dicom-web")

        def search() -> None:
            with http_client(worklist) as http:
                UpsClient(worklist, http).scheduled()

        peak, raised = peak_mib(search)
    assert isinstance(raised, RemoteStatusError), raised
    assert f"answer longer than {MAX_ANSWER_BYTES} bytes" in str(raised)
    assert peak < 2.5 * MAX_ANSWER_BYTES / MB, f"{peak:.0f} MiB held for a refused answer"


def test_an_error_status_with_a_long_declared_body_keeps_its_status() -> None:
    """The cap on error answers applies to what is read: the status is still seen."""
    with (
        HostileServer(lambda seen: _huge(404, 8)) as server,
        http_client(DicomWebServer("hostile", server.url)) as client,
        client.stream("GET", f"{server.url}/studies") as response,
    ):
        assert response.status_code == 404
        first = next(response.iter_bytes())
    assert first.strip() == b""
