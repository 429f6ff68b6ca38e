"""The fetch fast paths: zero-copy part views, header-only indexing, h11 buffer hand-over."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dicomstation import Database, Level, Query
from dicomstation.auth import http_client
from dicomstation.config import DicomWebServer
from dicomstation.database.scanner import scan_bytes, scan_head
from dicomstation.errors import InvalidDicomError
from dicomstation.nodes.multipart import iter_multipart, iter_parts
from tests.synth import write_ct_series

BOUNDARY = "fast-b0undary"


def _rechunk(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    pos, i = 0, 0
    while pos < len(data):
        yield data[pos : pos + sizes[i % len(sizes)]]
        pos, i = pos + sizes[i % len(sizes)], i + 1


@given(
    st.lists(st.binary(max_size=400), max_size=5).filter(
        lambda ps: all(BOUNDARY.encode() not in p for p in ps)
    ),
    st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=10),
)
@settings(max_examples=200, deadline=None)
def test_part_views_equal_chunks(parts: list[bytes], sizes: list[int]) -> None:
    message = b"".join(
        iter_multipart((({"Content-Type": "application/dicom"}, [p]) for p in parts), BOUNDARY)
    )
    seen = [
        b"".join(bytes(v) for v in part.views())
        for part in iter_parts(_rechunk(message, sizes), BOUNDARY)
    ]
    assert seen == parts


def test_scan_head_agrees_with_whole_file_scan(shared_data: Path) -> None:
    checked = 0
    for path in sorted(shared_data.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        try:
            whole = scan_bytes(data, str(path))
        except InvalidDicomError:
            continue
        quick = scan_head(data[:16384], len(data), str(path))
        if quick is not None:
            assert quick.fields == whole.fields and quick.transfer_syntax == whole.transfer_syntax
            checked += 1
    assert checked > 300


def test_truncated_files_are_refused_even_with_heads(tmp_path: Path) -> None:
    (path,) = write_ct_series(tmp_path / "src", 1, size=64)
    data = path.read_bytes()
    cuts = [133, 400, len(data) // 2, len(data) - 1]
    files = []
    for cut in cuts:
        out = tmp_path / f"cut{cut}.dcm"
        out.write_bytes(data[:cut])
        files.append(out)
    heads = {str(f): f.read_bytes()[:16384] for f in files}
    with Database.temporary() as db:
        report = db.add_files(files, move=False, heads=heads)
        assert not report.succeeded
        assert set(report.failed) == {str(f) for f in files}
        assert db.find(Query(Level.IMAGE)) == []
        whole = tmp_path / "whole.dcm"
        whole.write_bytes(data)
        ok = db.add_files([whole], move=True, heads={str(whole): data[:16384]})
        assert len(ok.succeeded) == 1
        stored = db.instance_path(str(pydicom.dcmread(path).SOPInstanceUID))
        assert stored.read_bytes() == data


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = b""

    def do_GET(self) -> None:
        body = type(self).body
        self.send_response(200)
        if self.path == "/chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 7919):
                piece = body[i : i + 7919]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("path", ["/length", "/chunked"])
def test_patched_h11_delivers_identical_bytes(path: str) -> None:
    _Handler.body = bytes(range(256)) * 20000 + b"tail"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with http_client(DicomWebServer("local", url)) as client:
            for _ in range(3):  # keep-alive: the buffer hand-over must not leak across responses
                with client.stream("GET", url + path) as response:
                    got = b"".join(response.iter_raw())
                assert got == _Handler.body
    finally:
        server.shutdown()
        server.server_close()
