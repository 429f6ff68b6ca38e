"""A hostile OpenID Connect provider cannot make the client hold more than a bounded answer.

The provider's answers (discovery document, tokens) are small JSON that httpx and
Authlib read whole. Before, they had no limit, and httpx inflated a gzip answer one
network read at a time, each read whole: 64 MiB of JSON sent as ~65 kB of gzip
became 64 MiB in memory. Our hostile provider (127.0.0.1, free port, stopped by the
test) sends such answers; Python's allocations are traced (``tracemalloc``) while
the client reads them.
"""

from __future__ import annotations

import contextlib
import gzip
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dicomstation.auth_oidc.provider import (
    MAX_ANSWER_BYTES,
    OidcConfig,
    discover,
    oauth_client,
    oauth_failure,
)
from dicomstation.errors import NodeError
from tests.peers import serving
from tests.security.client_support import peak_mib

_BIG = 64 << 20
#: 64 MiB of valid JSON, gzip-compressed (~65 kB on the wire)
_BOMB = gzip.compress(b'{"padding": "' + b"x" * _BIG + b'"}', 9)
#: 8 MiB of valid JSON, sent as it is (made here: the server's memory is traced too)
_PLAIN = b" " * (8 << 20) + b"{}"
_PIECE = b" " * 65536


class _Hostile(ThreadingHTTPServer):
    daemon_threads = True
    mode = "bomb"  # "bomb" (gzip), "plain" (declared length), "chunked" (no length)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Hostile

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.server.mode == "fine":
            issuer = self.server.issuer
            body = json.dumps({"issuer": issuer, "token_endpoint": issuer + "/token"}).encode()
            return self._send(body, {"Content-Length": str(len(body))})
        self._hostile()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self._hostile()

    def _hostile(self) -> None:
        mode = self.server.mode
        if mode in ("bomb", "fine"):
            self._send(_BOMB, {"Content-Encoding": "gzip", "Content-Length": str(len(_BOMB))})
        elif mode == "plain":
            self._send(_PLAIN, {"Content-Length": str(len(_PLAIN))})
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            with contextlib.suppress(OSError):  # the client stopped reading
                for _ in range(128):  # 8 MiB, no declared length
                    self.wfile.write(b"%x\r\n" % len(_PIECE))
                    self.wfile.write(_PIECE + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")

    def _send(self, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        with contextlib.suppress(OSError):  # the client stopped reading
            self.wfile.write(body)


@pytest.fixture()
def hostile() -> Iterator[_Hostile]:
    server = _Hostile(("127.0.0.1", 0), _Handler)
    with serving(server):
        yield server


def _config(server: _Hostile) -> OidcConfig:
    return OidcConfig("pacs", "http://127.0.0.1:1", server.issuer, "dicomstation")


@pytest.mark.parametrize("mode", ["bomb", "plain", "chunked"])
def test_a_huge_discovery_document_is_refused_in_bounded_memory(
    hostile: _Hostile, mode: str
) -> None:
    hostile.mode = mode
    peak, raised = peak_mib(lambda: discover(_config(hostile)))
    assert isinstance(raised, NodeError), raised
    assert f"longer than {MAX_ANSWER_BYTES} bytes" in str(raised)
    assert hostile.issuer in str(raised) and "pacs" in str(raised)
    assert "\n" not in str(raised)
    assert peak < 16, f"{peak:.0f} MiB held while reading a refused answer"


def test_a_token_endpoint_bomb_is_refused_in_bounded_memory(hostile: _Hostile) -> None:
    """Authlib's client reads the token answer whole: its transport caps it."""
    hostile.mode = "fine"  # a usable discovery document, then a bomb from /token
    cfg = _config(hostile)
    meta = discover(cfg)

    def refresh() -> None:
        with oauth_client(cfg, meta) as client:
            client.refresh_token(meta.token_endpoint, refresh_token="r")

    peak, raised = peak_mib(refresh)
    assert raised is not None
    error = oauth_failure(cfg, raised, "OIDC token refresh")
    assert f"longer than {MAX_ANSWER_BYTES} bytes" in str(error), error
    assert peak < 16, f"{peak:.0f} MiB held while reading a refused answer"


def test_small_compressed_answers_still_decode(hostile: _Hostile) -> None:
    hostile.mode = "fine"
    assert discover(_config(hostile)).token_endpoint == hostile.issuer + "/token"
