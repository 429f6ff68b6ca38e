"""Hostile uploads cannot freeze the server (issue 10: "41 slow or idle chunked STOW uploads
freeze the whole UI and DICOMweb server (no body read timeout, a 40-thread pool)").

Raw sockets open chunked STOW-RS requests and then stall or trickle; meanwhile the UI
API and QIDO-RS must keep answering, and every hostile upload must end (408 / 429)
within a bounded time.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dicomstation.config import Secret
from dicomstation.server import ServerOptions
from tests.security.http_support import (
    Station,
    read_status,
    send_chunk,
    station,
    timed_get,
    upload_head,
)

TOKEN = "limits-test-token-0123456789-abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PART_START = b"--XXXX\r\nContent-Type: application/dicom\r\n\r\nDICM"


@contextlib.contextmanager
def ui(tmp: Path, **limits: float) -> Iterator[Station]:
    options = ServerOptions(token=Secret(TOKEN), body_timeout=1.0, **limits)  # type: ignore[arg-type]
    with station(tmp, options) as st:
        yield st


@contextlib.contextmanager
def stalled_uploads(st: Station, count: int, path: str = "/dicom-web/studies") -> Iterator[list]:
    """``count`` chunked uploads that send one chunk and then nothing."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = upload_head("127.0.0.1", st.running.port, path, AUTH)
            send_chunk(sock, PART_START)
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def _answers_while_busy(st: Station) -> None:
    """The UI API and QIDO-RS answer promptly (a frozen server raises ReadTimeout)."""
    for path in ("/api/jobs", "/dicom-web/studies", "/api/servers/local/studies"):
        status, seconds = timed_get(f"{st.url}{path}", timeout=5, headers=AUTH)
        assert status == 200 and seconds < 3, (path, status, seconds)


def test_45_idle_uploads_neither_freeze_the_server_nor_last(tmp_path: Path) -> None:
    """More stalled uploads than the shared 40-thread pool: the server keeps answering,
    and each stalled upload is answered 408 once it stalled for body_timeout."""
    with ui(tmp_path, max_uploads=50, max_uploads_per_client=50) as st:
        with stalled_uploads(st, 45) as socks:
            _answers_while_busy(st)
            started = time.monotonic()
            statuses = [read_status(sock, timeout=10) for sock in socks]
            assert time.monotonic() - started < 15
        assert statuses == [408] * 45, statuses
        _answers_while_busy(st)
        assert not list((st.ws.db.root / "incoming").glob("stow*")), "staging cleaned up"


def test_uploads_per_client_are_bounded(tmp_path: Path) -> None:
    with (
        ui(tmp_path, max_uploads=8, max_uploads_per_client=3) as st,
        stalled_uploads(st, 3) as held,
        stalled_uploads(st, 2) as extra,
    ):
        refused = [read_status(sock, timeout=5) for sock in extra]
        assert refused == [429, 429], "beyond the per-client bound: refused at once"
        _answers_while_busy(st)
        assert [read_status(sock, timeout=10) for sock in held] == [408] * 3


def test_uploads_in_all_are_bounded(tmp_path: Path) -> None:
    with (
        ui(tmp_path, max_uploads=2, max_uploads_per_client=4) as st,
        stalled_uploads(st, 2) as held,
        stalled_uploads(st, 1) as extra,
    ):
        assert read_status(extra[0], timeout=5) == 429
        _answers_while_busy(st)
        assert [read_status(sock, timeout=10) for sock in held] == [408] * 2


def test_a_trickling_upload_is_cut_off(tmp_path: Path) -> None:
    """Never idle for body_timeout, but far slower than min_upload_rate: 408."""
    with ui(tmp_path, min_upload_rate=4096) as st:
        sock = upload_head("127.0.0.1", st.running.port, "/dicom-web/studies", AUTH)
        started = time.monotonic()
        status = None
        try:
            for _ in range(60):  # 10 bytes every 0.1 s: 100 bytes/s
                send_chunk(sock, PART_START[:10])
                status = read_status(sock, timeout=0.1)
                if status is not None:
                    break
        except (BrokenPipeError, ConnectionResetError):
            status = read_status(sock, timeout=2)
        finally:
            sock.close()
        assert status == 408
        assert time.monotonic() - started < 5


def test_ui_api_bodies_are_bounded_in_time_and_size(tmp_path: Path) -> None:
    with ui(tmp_path) as st:
        sock = upload_head("127.0.0.1", st.running.port, "/api/send", AUTH)
        send_chunk(sock, b'{"server": ')
        assert read_status(sock, timeout=10) == 408
        sock.close()

        def huge() -> Iterator[bytes]:
            yield b'{"uids": ["' + b"1" * (5 << 20) + b'"]}'

        response = httpx.post(
            f"{st.url}/api/send",
            content=huge(),
            headers={**AUTH, "Content-Type": "application/json"},
            timeout=20,
        )
        assert response.status_code == 413
        assert httpx.get(f"{st.url}/api/jobs", headers=AUTH).json() == [], "no send started"


@pytest.mark.parametrize(
    ("length", "status"),
    [(str(5 << 30), 413), ("99999999999999999999999", 400)],  # h11 refuses the absurd one
)
def test_declared_oversize_bodies_are_refused_before_reading(
    tmp_path: Path, length: str, status: int
) -> None:
    with ui(tmp_path) as st:
        sock = socket.create_connection(("127.0.0.1", st.running.port), timeout=10)
        try:
            sock.sendall(
                (
                    "POST /dicom-web/studies HTTP/1.1\r\n"
                    f"Host: 127.0.0.1:{st.running.port}\r\n"
                    f"Authorization: Bearer {TOKEN}\r\n"
                    "Content-Type: application/dicom\r\n"
                    f"Content-Length: {length}\r\n\r\n"
                ).encode()
            )
            assert read_status(sock, timeout=5) == status
        finally:
            sock.close()
