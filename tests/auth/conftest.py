"""Fixtures: the OIDC provider (tests/auth/provider.py), a DICOMweb resource server that
requires its bearer tokens (dicomstation's own server over a temporary database, behind a
bearer check), and the CLI in a subprocess with its own settings, keyring and database."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import Response

from dicomstation.database import Database
from dicomstation.server import RunningServer, ServerOptions, create_app, start_in_thread
from tests.auth.provider import CLIENT_ID, Provider, running_provider
from tests.synth import write_ct_series

SERIES, SLICES = 12, 3
_RETRIEVE = re.compile(r"/studies/[\d.]+/series/[\d.]+$")
Hold = Callable[[str, str], Awaitable[None]]


@dataclass
class Guard:
    """What the resource server saw: tokens accepted, requests refused, a hook to hold one."""

    provider: Provider
    accepted: list[str] = field(default_factory=list)
    refused: int = 0
    retrieves: int = 0
    hold: Hold | None = None
    held: str = ""
    held_at: int = 0


@dataclass
class Resource:
    """The bearer-protected DICOMweb server and the study it serves."""

    url: str
    study_uid: str
    guard: Guard


def guarded(db: Database, guard: Guard) -> RunningServer:
    """dicomstation's DICOMweb server on loopback, answering 401 without a valid token."""
    app = create_app(db, ServerOptions(port=0))

    @app.middleware("http")
    async def bearer(request: Request, call_next: Callable[..., Awaitable[Response]]) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not guard.provider.valid(token):
            guard.refused += 1
            refused = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            return Response(status_code=401, headers=refused)
        guard.accepted.append(token)
        if _RETRIEVE.search(request.url.path):
            guard.retrieves += 1
            if guard.hold is not None:
                await guard.hold(request.url.path, token)
        return await call_next(request)

    return start_in_thread(app)


def hold_until_expired(guard: Guard, at: int) -> Hold:
    """Hold the ``at``-th series retrieve until the token it carries has expired (bounded)."""

    async def hold(path: str, token: str) -> None:
        if guard.retrieves != at:
            return
        guard.held, guard.held_at = token, len(guard.accepted)
        expiry = guard.provider.expiry(token)
        deadline = time.monotonic() + 15
        while time.time() <= expiry and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # polling for the expiry event, bounded
        assert time.time() > expiry, "the token did not expire in time"

    return hold


@pytest.fixture(scope="module")
def study_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, str]]:
    """A temporary database with one study of SERIES x SLICES small synthetic CT slices."""
    folder = tmp_path_factory.mktemp("study")
    study_uid = "1.2.826.0.1.3680043.8.498.4242"
    paths = []
    for index in range(SERIES):
        paths += write_ct_series(folder / str(index), SLICES, size=16, study_uid=study_uid)
    with Database.temporary() as db:
        report = db.import_path(paths)
        assert report.ok, report.failed
        yield db, study_uid


@pytest.fixture()
def provider() -> Iterator[Provider]:
    with running_provider() as running:
        yield running


@pytest.fixture()
def resource(study_db: tuple[Database, str], provider: Provider) -> Iterator[Resource]:
    db, study_uid = study_db
    guard = Guard(provider)
    running = guarded(db, guard)
    try:
        yield Resource(f"{running.url}/dicom-web", study_uid, guard)
    finally:
        running.stop()


@dataclass
class Cli:
    """``dicomstation`` in a subprocess with its own settings, keyring and database."""

    home: Path
    keyring: bool
    outputs: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PYTHON_KEYRING_BACKEND"}
        env |= {
            "DICOMSTATION_CONFIG": str(self.home / "settings.toml"),
            "DICOMSTATION_DB": str(self.home / "db"),
            "XDG_DATA_HOME": str(self.home / "xdg"),  # where keyrings.alt keeps its file
            "COLUMNS": "200",
        }
        if self.keyring:
            env["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
        else:
            env["DICOMSTATION_KEYRING"] = "file"
        return env

    def command(self, *argv: str) -> list[str]:
        return [sys.executable, "-c", "from dicomstation.cli.main import app; app()", *argv]

    def run(self, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.command(*argv), input=stdin, capture_output=True, text=True,
            env=self.env, timeout=120, check=False,
        )  # fmt: skip
        self.outputs += [done.stdout, done.stderr]
        return done

    def start(self, *argv: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=self.env,
        )  # fmt: skip

    def add_server(self, name: str, resource: Resource, provider: Provider) -> None:
        added = self.run(
            "server", "add", name, "--url", resource.url, "--oidc-issuer", provider.issuer,
            "--oidc-client-id", CLIENT_ID, "--oidc-scope", "openid dicomweb",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr


@pytest.fixture(params=[True, False], ids=["keyring", "file"])
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Cli:
    """The CLI with keyrings.alt's file backend as OS keyring, or with no keyring (0600 file)."""
    if request.param:
        pytest.importorskip("keyrings.alt.file")
    return Cli(tmp_path, keyring=request.param)
