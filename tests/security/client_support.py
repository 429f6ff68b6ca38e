"""Helpers for the client-side security tests: a small hostile HTTP server of our own.

:class:`HostileServer` listens on 127.0.0.1 (a free port) and answers every
request with whatever its ``behaviour`` returns, recording what it was sent
(method, path, headers) so a test can check, e.g., that no ``Authorization``
header reached it. Bodies are iterables of bytes written as they are produced,
so a 400 MB answer is generated lazily and costs the server nothing; a client
that hangs up early just ends the answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Seen:
    """One request the hostile server received."""

    method: str
    path: str
    headers: dict[str, str]
    at: float = 0.0  # time.monotonic() when it arrived


@dataclass(frozen=True)
class Reply:
    """What to answer: status, headers and a lazily produced body."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Iterable[bytes] = ()


Behaviour = Callable[[Seen], Reply]


def json_reply(data: Any, status: int = 200, **headers: str) -> Reply:
    """A DICOM JSON answer."""
    body = json.dumps(data).encode()
    return Reply(
        status,
        {"Content-Type": "application/dicom+json", "Content-Length": str(len(body)), **headers},
        [body],
    )


def study(uid: str, padding: int = 0) -> dict[str, Any]:
    """A QIDO-RS study result (``padding`` bytes of description make it larger)."""
    return {
        "0020000D": {"vr": "UI", "Value": [uid]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "HOSTILE^TEST"}]},
        "00081030": {"vr": "LO", "Value": ["x" * padding]},
    }


def huge_study_array(total_bytes: int, padding: int = 900) -> Iterator[bytes]:
    """A JSON array of distinct studies, ~``total_bytes`` long, produced piece by piece."""
    yield b"["
    sent, number = 1, 0
    batch: list[bytes] = []
    while sent < total_bytes:
        number += 1
        item = (b"," if number > 1 else b"") + json.dumps(
            study(f"1.2.826.0.1.3680043.10.543.{number}", padding)
        ).encode()
        batch.append(item)
        sent += len(item)
        if len(batch) == 64:
            yield b"".join(batch)
            batch = []
    yield b"".join(batch) + b"]"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _answer(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        seen = Seen(self.command, self.path, headers, time.monotonic())
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        with self.server.lock:
            self.server.seen.append(seen)
        reply = self.server.behaviour(seen)
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            for piece in reply.body:
                self.wfile.write(piece)
                with self.server.lock:
                    self.server.sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: what a capped client does
        self.close_connection = True

    do_GET = do_POST = do_PUT = _answer  # noqa: N815 - http.server names


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    behaviour: Behaviour
    seen: list[Seen]
    lock: threading.Lock
    sent: int


class HostileServer:
    """A loopback HTTP server answering with ``behaviour``; use as a context manager."""

    def __init__(self, behaviour: Behaviour) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.behaviour = behaviour
        self._server.seen = []
        self._server.lock = threading.Lock()
        self._server.sent = 0
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def seen(self) -> list[Seen]:
        """Requests received so far."""
        with self._server.lock:
            return list(self._server.seen)

    @property
    def sent(self) -> int:
        """Body bytes written so far (what the client let through its socket)."""
        with self._server.lock:
            return self._server.sent

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def settings_text(name: str, url: str, **limits: int | float) -> str:
    """A settings file with one DICOMweb server and optional ``[servers.<name>.limits]``."""
    text = f'[servers.{name}]\nprotocol = "dicomweb"\nurl = "{url}"\n'
    if limits:
        text += f"[servers.{name}.limits]\n" + "".join(f"{k} = {v}\n" for k, v in limits.items())
    return text


# Runs the CLI in a child process and reports its peak RSS (KiB) on the last stderr line.
_CLI_WITH_RSS = """
import resource, sys
from dicomstation.cli.main import app
try:
    app(sys.argv[1:], prog_name="dicomstation")
    code = 0
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 1
print("maxrss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


@dataclass(frozen=True)
class CliRun:
    """A finished CLI child: exit code, output, peak RSS in MiB."""

    code: int
    stdout: str
    stderr: str
    rss_mb: float


def run_cli(args: list[str], config: Path, *, timeout: float = 120) -> CliRun:
    """Run ``dicomstation <args>`` in a child process with ``config`` as its settings file."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), DICOMSTATION_CONFIG=str(config))
    env["DICOMSTATION_DB"] = str(config.parent / "db")
    env["COLUMNS"] = "200"
    done = subprocess.run(
        [sys.executable, "-c", _CLI_WITH_RSS, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
        check=False,
    )
    lines = done.stderr.strip().splitlines()
    rss = float(lines[-1].split()[1]) / 1024 if lines and lines[-1].startswith("maxrss") else -1
    stderr = "\n".join(lines[:-1]) if rss >= 0 else done.stderr
    return CliRun(done.returncode, done.stdout, stderr, rss)


def invoke_cli(args: list[str], config: Path) -> CliRun:
    """Run ``dicomstation <args>`` in this process (Typer's CliRunner); rss_mb is -1."""
    from typer.testing import CliRunner

    from dicomstation.cli.main import app

    env = {"DICOMSTATION_CONFIG": str(config), "DICOMSTATION_DB": str(config.parent / "db")}
    result = CliRunner().invoke(app, args, env={**env, "COLUMNS": "200"})
    return CliRun(result.exit_code, result.stdout, result.output, -1)


def basic(user: str, password: str) -> str:
    """The ``Authorization`` value of HTTP Basic for ``user:password``."""
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def empty_qido(_seen: Seen) -> Reply:
    """An empty QIDO-RS answer."""
    return json_reply([])


@contextlib.contextmanager
def ui_api(settings: Path) -> Iterator[httpx.Client]:
    """The real UI app (launch token sent) over a temporary database, on loopback."""
    from dicomstation.database import Database
    from dicomstation.server import start_in_thread
    from dicomstation.web import Workstation, create_ui_app

    with Database.temporary() as db:
        app = create_ui_app(Workstation(db, settings))
        token = app.state.options.token.reveal()
        running = start_in_thread(app)
        try:
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=running.url, headers=headers, timeout=30) as client:
                yield client
        finally:
            running.stop()


def peak_mib(call: Callable[[], object]) -> tuple[float, BaseException | None]:
    """Peak traced Python memory (MiB) during ``call``, and what it raised (None if nothing)."""
    tracemalloc.start()
    raised: BaseException | None = None
    try:
        call()
    except Exception as exc:  # what the caller checks
        raised = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1] / (1 << 20)
        tracemalloc.stop()
    return peak, raised
