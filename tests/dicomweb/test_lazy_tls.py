"""Our transport builds its TLS context on the first https connection only (issue 15).

A verifying context loads the CA store (~35-100 ms of CPU); a node of an ``http://``
server never needs one. Verification itself (on by default, CA bundle, off) is
tested against a real TLS server in test_auth.py.
"""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dicomstation.auth import http_client
from dicomstation.config import DicomWebServer
from dicomstation.nodes import http_transport
from dicomstation.nodes.http_transport import LargeReadTransport


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/dicom-web"
    server.shutdown()
    server.server_close()


def test_http_server_needs_no_tls_context(http_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    real = httpx.create_ssl_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(kwargs)
        return real(*args, **kwargs)

    # httpx's name and the one its transport module imported (what httpx itself calls)
    monkeypatch.setattr(httpx, "create_ssl_context", counting)
    monkeypatch.setattr(httpx._transports.default, "create_ssl_context", counting)
    with http_client(DicomWebServer("plain", http_url)) as client:
        assert client.get(http_url + "/studies").text == "ok"
        inners = [getattr(t, "inner", t) for t in vars(client).values()]  # BoundedDecoding
        transports = [t for t in inners if isinstance(t, LargeReadTransport)]
        assert transports and transports[0].large_reads
    assert built == []


def test_tls_context_made_once_and_verifying() -> None:
    tls = http_transport._LazyTLS(True, trust_env=True)
    context = tls.context()
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert tls.context() is context  # one per transport, shared by its connections
    unverified = http_transport._LazyTLS(False, trust_env=True).context()
    assert unverified.verify_mode is ssl.CERT_NONE
    bundle = ssl.create_default_context()
    assert http_transport._LazyTLS(bundle, trust_env=True).context() is bundle
