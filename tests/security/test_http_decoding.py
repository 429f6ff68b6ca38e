"""A compressed answer is inflated in bounded pieces: a few kB from a server never take GBs.

httpx inflates each network read whole (``Content-Encoding: gzip`` or ``deflate``), and
our connections read up to 1 MiB at once: deflate inflates up to ~1,000-fold, so one
read of a hostile answer could take a GiB before any of our size limits saw a byte. A
hostile server of our own (127.0.0.1) sends such bombs to the real client.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

import httpx
import pytest

from dicomstation.auth import http_client
from dicomstation.config import DicomWebServer
from dicomstation.errors import ProtocolError
from dicomstation.nodes.http_decoding import PIECE_BYTES
from dicomstation.nodes.http_limits import read_capped
from tests.security.client_support import HostileServer, Reply, Seen

MB = 1 << 20
ZEROS = b"\x00" * (64 * MB)


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


ENCODINGS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda data: gzip.compress(data, 9),
    "deflate": lambda data: zlib.compress(data, 9),  # zlib-wrapped, as RFC 9110 says
    "deflate-raw": _raw_deflate,  # what some servers send as "deflate"
    "gzip, gzip": lambda data: gzip.compress(gzip.compress(data, 9), 9),
}


def _serving(body: bytes, encoding: str) -> Callable[[Seen], Reply]:
    headers = {
        "Content-Type": "application/dicom+json",
        "Content-Encoding": encoding.replace("deflate-raw", "deflate"),
        "Content-Length": str(len(body)),
    }
    return lambda seen: Reply(200, headers, [body])


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_a_bomb_is_inflated_in_bounded_pieces(encoding: str) -> None:
    body = ENCODINGS[encoding](ZEROS)
    assert len(body) < 200_000  # a few hundred kB at most on the wire
    with HostileServer(_serving(body, encoding)) as server:
        client = http_client(DicomWebServer("hostile", server.url))
        with client, client.stream("GET", f"{server.url}/studies") as response:
            sizes = [len(piece) for piece in response.iter_bytes()]
    assert sum(sizes) == len(ZEROS)
    assert max(sizes) <= PIECE_BYTES < 2 * MB


def test_a_capped_read_stops_at_its_limit() -> None:
    body = gzip.compress(ZEROS, 9)
    with HostileServer(_serving(body, "gzip")) as server:
        client = http_client(DicomWebServer("hostile", server.url))
        with (
            client,
            client.stream("GET", f"{server.url}/studies") as response,
            pytest.raises(ProtocolError, match="larger than 1,048,576 bytes"),
        ):
            read_capped(response, MB, "max_json_bytes", server="hostile", operation="QIDO")


def test_small_answers_decode_as_before() -> None:
    text = b'[{"0020000D": {"vr": "UI", "Value": ["1.2.3"]}}]'
    for encoding, pack in ENCODINGS.items():
        with HostileServer(_serving(pack(text), encoding)) as server:
            client = http_client(DicomWebServer("hostile", server.url))
            with client:
                response = client.get(f"{server.url}/studies")
        assert response.content == text, encoding
        assert response.json()[0]["0020000D"]["Value"] == ["1.2.3"]


def test_a_corrupt_body_is_a_decoding_error() -> None:
    body = gzip.compress(b"x" * 10_000)[:-40] + b"\xff" * 40
    with HostileServer(_serving(body, "gzip")) as server:
        client = http_client(DicomWebServer("hostile", server.url))
        with client, pytest.raises(httpx.DecodingError):
            client.get(f"{server.url}/studies")
