"""Helpers for the HTTP attack tests: a seeded UI on loopback, raw uploads, certificates, Chromium.

Every server started here listens on 127.0.0.1 (or another loopback address) on a
free port and is stopped by the context manager that started it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.data import get_testdata_file

from dicomstation.config import DicomWebServer
from dicomstation.database import Database
from dicomstation.models import Level, Query
from dicomstation.server import RunningServer, ServerOptions, create_app, start_in_thread
from dicomstation.settings import Settings
from dicomstation.web import Workstation, create_ui_app
from tests.web.browser_support import ARGS as CHROMIUM_ARGS
from tests.web.browser_support import CHROMIUM

ROOT = Path(__file__).resolve().parents[2]


def ct_file() -> Path:
    """pydicom's CT_small.dcm (one CT slice of a real patient-like study)."""
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    return Path(path)


@dataclass(frozen=True)
class Station:
    """A UI over a database holding one study, configured with a 'sink' DICOMweb server."""

    ws: Workstation
    running: RunningServer
    options: ServerOptions
    sink: Database
    study_uid: str

    @property
    def url(self) -> str:
        """Root URL of the UI."""
        return self.running.url

    def auth(self) -> dict[str, str]:
        """Headers that carry the UI's token."""
        return {"Authorization": f"Bearer {self.options.token.reveal()}"}


@contextlib.contextmanager
def station(tmp: Path, options: ServerOptions) -> Iterator[Station]:
    """Start a UI with ``options`` over a database seeded with :func:`ct_file`.

    Its settings know server ``sink``: an empty database served over DICOMweb,
    so a test can see whether a send happened.
    """
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(Database.temporary())
        sink_server = start_in_thread(create_app(sink))
        stack.callback(sink_server.stop)
        Settings().with_server(DicomWebServer("sink", f"{sink_server.url}/dicom-web")).save(
            tmp / "settings.toml"
        )
        db = stack.enter_context(Database.temporary())
        assert db.import_path([ct_file()]).ok
        study = db.find(Query(Level.STUDY))[0].study_uid
        ws = Workstation(db, tmp / "settings.toml")
        running = start_in_thread(
            create_ui_app(ws, options),
            host=options.host,
            tls_cert=options.tls_cert,
            tls_key=options.tls_key,
        )
        stack.callback(running.stop)
        yield Station(ws, running, options, sink, study)


@contextlib.contextmanager
def dicomweb(db: Database, options: ServerOptions) -> Iterator[RunningServer]:
    """:func:`create_app` over ``db`` with ``options``, running on loopback."""
    running = start_in_thread(create_app(db, options), host=options.host)
    try:
        yield running
    finally:
        running.stop()


def upload_head(host: str, port: int, path: str, headers: dict[str, str]) -> socket.socket:
    """Open a raw connection and send the head of a chunked STOW-RS request (no body yet)."""
    sock = socket.create_connection((host, port), timeout=10)
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        'Content-Type: multipart/related; type="application/dicom"; boundary=XXXX',
        "Transfer-Encoding: chunked",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def send_chunk(sock: socket.socket, data: bytes) -> None:
    """Send one chunk of a chunked body."""
    sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")


def read_status(sock: socket.socket, timeout: float) -> int | None:
    """The status code of the answer on ``sock``, None when nothing came in ``timeout`` s."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            got = sock.recv(4096)
            if not got:
                break
            data += got
    except (TimeoutError, ConnectionError):
        pass
    if not data.startswith(b"HTTP/1.1 "):
        return None
    return int(data.split(b" ", 2)[1])


def timed_get(url: str, timeout: float = 5.0, **kwargs: Any) -> tuple[int, float]:
    """GET ``url``: status and seconds taken (raises on a timeout: the server froze)."""
    started = time.monotonic()
    response = httpx.get(url, timeout=timeout, **kwargs)
    return response.status_code, time.monotonic() - started


def self_signed(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for ``host`` (openssl CLI): (cert.pem, key.pem)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
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
            f"/CN={host}",
            "-addext",
            f"subjectAltName=IP:{host}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def cli_env(tmp: Path) -> dict[str, str]:
    """Environment for a ``dicomstation`` child: the repository first, settings in ``tmp``."""
    return dict(
        os.environ,
        PYTHONPATH=str(ROOT / "src"),
        DICOMSTATION_CONFIG=str(tmp / "settings.toml"),
        DICOMSTATION_DB=str(tmp / "db"),
        COLUMNS="400",  # rich wraps at 80 columns without a terminal
    )


def run_cli(
    tmp: Path, *args: str, stdin: str = "", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``dicomstation ARGS`` to completion (``stdin`` answers prompts)."""
    return subprocess.run(
        [sys.executable, "-m", "dicomstation.cli.main", *args],
        env=cli_env(tmp),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextlib.contextmanager
def chromium_page() -> Iterator[Any]:
    """A Chromium page (Playwright); skips when Playwright or Chromium is missing."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if shutil.which(CHROMIUM) is None:
        pytest.skip("chromium is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context()
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
