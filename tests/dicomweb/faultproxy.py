"""A tiny fault-injecting HTTP proxy on 127.0.0.1, put in front of the real Orthanc.

It forwards requests to the upstream server and, as configured in :class:`Faults`,
answers error statuses, refuses ``transfer-syntax=*``, drops offset parameters,
truncates or rewrites answers, drops the connection mid-body, or stalls. Responses
are buffered (test data is small) so truncation can be exact.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx

_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "proxy-connection",
    "host",
}


@dataclass
class Faults:
    """What the proxy does wrong; fields apply to requests whose path contains ``match``."""

    match: str = ""
    accept: str = ""  # and whose Accept header contains this (e.g. "multipart" for WADO-RS)
    statuses: list[int] = field(default_factory=list)  # answered (then popped) before forwarding
    strip_offset: bool = False
    refuse_any_ts: bool = False
    truncate_at: int | None = None  # send this many body bytes then close (Content-Length kept)
    truncate_times: int = 0
    hang_after: int | None = None  # send this many body bytes, then hang until proxy exit
    content_type: str | None = None  # replace the upstream Content-Type
    body: Callable[[bytes], bytes] | None = None  # rewrite the upstream body
    stall: float = 0.0  # wait before answering
    requests: list[str] = field(default_factory=list)  # "METHOD path?query | accept"
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultProxy

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _forward(self) -> None:
        faults = self.server.faults
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = [q for q in parts.query.split("&") if q]
        accept = self.headers.get("accept", "")
        applies = faults.match in parts.path and faults.accept in accept
        with faults.lock:
            faults.requests.append(f"{self.command} {self.path} | {accept}")
            status = faults.statuses.pop(0) if applies and faults.statuses else None
            truncate = applies and faults.truncate_at is not None and faults.truncate_times > 0
            if truncate:
                faults.truncate_times -= 1
        if applies and faults.stall:
            time.sleep(faults.stall)
        if status is not None:
            return self._reply(status, {"Content-Type": "text/plain"}, b"injected fault")
        if applies and faults.refuse_any_ts and "transfer-syntax=*" in accept:
            return self._reply(406, {"Content-Type": "text/plain"}, b"transfer-syntax=* refused")
        if applies and faults.strip_offset:
            query = [q for q in query if not q.startswith("offset=")]
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        url = self.server.upstream + parts.path + ("?" + "&".join(query) if query else "")
        answer = self.server.client.request(self.command, url, headers=headers, content=body)
        out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP}
        content = answer.content
        if applies and faults.content_type is not None:
            out["content-type"] = faults.content_type
        if applies and faults.body is not None:
            content = faults.body(content)
        if applies and faults.hang_after is not None:
            return self._hang(answer.status_code, out, content, faults.hang_after)
        self._reply(answer.status_code, out, content, faults.truncate_at if truncate else None)

    def _hang(self, status: int, headers: dict[str, str], content: bytes, keep: int) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content[:keep])
        self.wfile.flush()
        self.server.released.wait(60)
        self.close_connection = True

    def _reply(
        self, status: int, headers: dict[str, str], content: bytes, truncate_at: int | None = None
    ) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        if truncate_at is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        if truncate_at is None:
            self.wfile.write(content)
            return
        self.wfile.write(content[:truncate_at])
        self.wfile.flush()
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _forward  # noqa: N815 - http.server's names


class FaultProxy(ThreadingHTTPServer):
    """The proxy server; use as a context manager; ``url`` replaces the upstream root."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        split = urlsplit(upstream)
        self.upstream = f"{split.scheme}://{split.netloc}"
        self.path_prefix = split.path
        self.faults = Faults()
        self.released = threading.Event()
        self.client = httpx.Client(timeout=60)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The proxied equivalent of the upstream URL."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}{self.path_prefix}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self.shutdown()
        self.server_close()
        self.client.close()
        self._thread.join(timeout=5)
