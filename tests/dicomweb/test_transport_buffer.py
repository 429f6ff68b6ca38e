"""Our connections' h11 receive buffer parses exactly as h11's own, and copies less.

:class:`~dicomstation.nodes.http_transport.AdoptingReceiveBuffer` replaces the
buffer of our own connections only (nodes/http_transport.py). Fed the same
responses cut at random places, an ``h11.Connection`` with it must produce the
same events as one with h11's buffer: content-length, chunked and
close-delimited bodies, two keep-alive responses in a row, and pieces that are
bytes or bytearray. A real exchange with a local server checks that the
transport uses our classes and returns the bodies intact over keep-alive.
"""

from __future__ import annotations

import http.server
import random
import threading
from collections.abc import Iterator

import h11
import httpx
import pytest

from dicomstation.nodes.http_transport import (
    AdoptingReceiveBuffer,
    LargeReadTransport,
    large_reads_supported,
)

pytestmark = pytest.mark.skipif(
    not large_reads_supported(), reason="our connection classes are off on this h11/httpcore"
)


def _content_length(body: bytes) -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nX-A: 1\r\n\r\n"
    return head.encode() + body


def _chunked(body: bytes, rng: random.Random) -> bytes:
    out = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"]
    pos = 0
    while pos < len(body):
        size = rng.randint(1, 5000)
        piece = body[pos : pos + size]
        out += [f"{len(piece):x}\r\n".encode(), piece, b"\r\n"]
        pos += size
    out.append(b"0\r\nX-Trailer: t\r\n\r\n")
    return b"".join(out)


def _close_delimited(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body


def _pieces(wire: bytes, rng: random.Random) -> Iterator[bytes | bytearray]:
    pos = 0
    while pos < len(wire):
        size = rng.choice([1, 2, 3, 7, 100, 4096, 65536, len(wire)])
        piece = wire[pos : pos + size]
        yield bytearray(piece) if rng.random() < 0.2 else piece
        pos += size


def _events(
    conn: h11.Connection, pieces: list[bytes | bytearray], responses: int, close: bool
) -> list[tuple[object, ...]]:
    found: list[tuple[object, ...]] = []
    feed = iter([*pieces, b""] if close else pieces)
    for number in range(responses):
        if number:
            conn.start_next_cycle()
        conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
        conn.send(h11.EndOfMessage())
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(next(feed, b"")) if close else next(feed))
                continue
            if isinstance(event, h11.Data):
                found.append(("data", bytes(event.data)))
            elif isinstance(event, h11.Response):
                found.append(("response", event.status_code, tuple(event.headers)))
            elif isinstance(event, h11.EndOfMessage):
                found.append(("end", tuple(event.headers)))
                break
            else:
                found.append((type(event).__name__,))
                break
    return found


def _joined(events: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """Events with consecutive data joined (how a body is cut may differ, not its bytes)."""
    out: list[tuple[object, ...]] = []
    for event in events:
        if event[0] == "data" and out and out[-1][0] == "data":
            out[-1] = ("data", bytes(out[-1][1]) + bytes(event[1]))  # type: ignore[arg-type]
        else:
            out.append(event)
    return out


@pytest.mark.parametrize("kind", ["length", "chunked", "close"])
def test_same_events_as_h11_for_random_cuts(kind: str) -> None:
    rng = random.Random(f"buffer-{kind}")
    for _ in range(80):
        bodies = [rng.randbytes(rng.choice([0, 1, 5, 300, 20000, 70000])) for _ in range(2)]
        if kind == "close":
            bodies = bodies[:1]
            wire = _close_delimited(bodies[0])
        elif kind == "chunked":
            wire = b"".join(_chunked(b, rng) for b in bodies)
        else:
            wire = b"".join(_content_length(b) for b in bodies)
        pieces = list(_pieces(wire, rng))
        plain = h11.Connection(h11.CLIENT)
        ours = h11.Connection(h11.CLIENT)
        ours._receive_buffer = AdoptingReceiveBuffer()
        expected = _events(plain, pieces, len(bodies), kind == "close")
        got = _events(ours, pieces, len(bodies), kind == "close")
        assert _joined(got) == _joined(expected)
        data = b"".join(bytes(e[1]) for e in got if e[0] == "data")  # type: ignore[arg-type]
        assert data == b"".join(bodies)


def test_a_whole_read_of_body_is_handed_on_without_a_copy() -> None:
    conn = h11.Connection(h11.CLIENT)
    conn._receive_buffer = AdoptingReceiveBuffer()
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n")
    assert isinstance(conn.next_event(), h11.Response)
    read = bytes(1_000_000)
    conn.receive_data(read)
    event = conn.next_event()
    assert isinstance(event, h11.Data) and event.data is read  # the same object: no copy
    plain = h11.Connection(h11.CLIENT)  # h11's own buffer copies it (what we save)
    plain.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    plain.send(h11.EndOfMessage())
    plain.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n")
    plain.next_event()
    plain.receive_data(read)
    assert plain.next_event().data is not read  # type: ignore[union-attr]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    body = random.Random(7).randbytes(3_000_000)

    def do_GET(self) -> None:
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for pos in range(0, len(self.body), 700_000):
                piece = self.body[pos : pos + 700_000]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


def test_transport_uses_our_connections_over_keep_alive() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with httpx.Client(transport=LargeReadTransport(), timeout=30) as client:
            for path in ("/length", "/chunked", "/length", "/chunked"):
                with client.stream("GET", url + path) as response:
                    assert b"".join(response.iter_bytes()) == _Handler.body
            pool = client._transport._pool  # type: ignore[attr-defined]
            connections = pool.connections
            assert len(connections) == 1, "one kept-alive connection served all four"
            http11 = connections[0]._connection
            assert type(http11).__name__ == "_HTTP11Connection"
            assert isinstance(http11._h11_state._receive_buffer, AdoptingReceiveBuffer)
    finally:
        server.shutdown()
        server.server_close()
