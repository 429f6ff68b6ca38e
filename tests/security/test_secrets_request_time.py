"""At request time, a credential goes only to the origin it is bound to (redirects included).

Defence in depth below the settings: the real httpx client built by
:func:`dicomstation.auth.http_client`, servers of our own on loopback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomstation.config import Credentials, DicomWebServer, Secret, origin_of
from dicomstation.models import Level, Query
from dicomstation.nodes.dicomweb import DicomWebNode
from dicomstation.settings import Settings
from tests.security.client_support import (
    HostileServer,
    Reply,
    Seen,
    basic,
    empty_qido,
    invoke_cli,
)

SECRET = "s3cret-Value"
CREDENTIALS = {
    "basic": Credentials(username="alice", password=Secret(SECRET)),
    "bearer": Credentials(token=Secret(SECRET)),
}


SENT = {"basic": basic("alice", SECRET), "bearer": f"Bearer {SECRET}"}


def _headers(server: HostileServer) -> list[str | None]:
    return [s.headers.get("authorization") for s in server.seen]


@pytest.mark.parametrize("kind", sorted(CREDENTIALS))
def test_a_redirect_to_another_origin_carries_no_credential(kind: str) -> None:
    with HostileServer(empty_qido) as evil:

        def redirect(seen: Seen) -> Reply:
            return Reply(302, {"Location": evil.url + seen.path, "Content-Length": "0"})

        with HostileServer(redirect) as legit:
            server = DicomWebServer("pacs", legit.url, CREDENTIALS[kind])
            with DicomWebNode.from_config(server) as node:
                assert node.find(Query(Level.STUDY)) == []
            assert _headers(legit) == [SENT[kind]]  # the legitimate origin got it
            assert len(evil.seen) == 1
            assert _headers(evil) == [None]


def test_credentials_bound_elsewhere_are_never_sent() -> None:
    with HostileServer(empty_qido) as evil:
        bound = Credentials(token=Secret(SECRET), origin="https://pacs.example.org:443")
        with DicomWebNode.from_config(DicomWebServer("pacs", evil.url, bound)) as node:
            node.find(Query(Level.STUDY))
        assert _headers(evil) == [None]


def test_a_hand_edited_url_does_not_take_the_secret_along(tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    with HostileServer(empty_qido) as legit, HostileServer(empty_qido) as evil:
        Settings().with_server(DicomWebServer("pacs", legit.url, CREDENTIALS["basic"])).save(config)
        assert invoke_cli(["query", "pacs"], config).code == 0
        assert _headers(legit) == [basic("alice", SECRET)]
        text = config.read_text()
        assert f'origin = "{origin_of(legit.url)}"' in text
        # the URL changed behind our back (the recorded origin stays)
        config.write_text(text.replace(f'url = "{legit.url}"', f'url = "{evil.url}"'))
        assert invoke_cli(["query", "pacs"], config).code == 0
        assert _headers(evil) == [None]


def test_a_file_without_origins_binds_secrets_to_their_url(tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    with HostileServer(empty_qido) as legit:
        config.write_text(
            f'[servers.pacs]\nurl = "{legit.url}"\nusername = "alice"\npassword = "{SECRET}"\n'
        )
        assert invoke_cli(["query", "pacs"], config).code == 0
        assert _headers(legit) == [basic("alice", SECRET)]
