"""Fixtures: dicomstation's DICOMweb server (with a token) serving an empty database, for UPS-RS."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from dicomstation.config import Secret
from dicomstation.database import Database
from dicomstation.server import RunningServer, ServerOptions, create_app, start_in_thread

TOKEN = "ups-test-token-0123456789"


@dataclass(frozen=True)
class UpsServer:
    """The running server, its database and its DICOMweb root."""

    db: Database
    running: RunningServer

    @property
    def root(self) -> str:
        return f"{self.running.url}/dicom-web"

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.root, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )


@pytest.fixture()
def ups_server() -> Iterator[UpsServer]:
    """An empty database served with a token on a free loopback port."""
    with Database.temporary() as db:
        running = start_in_thread(create_app(db, ServerOptions(port=0, token=Secret(TOKEN))))
        try:
            yield UpsServer(db, running)
        finally:
            running.stop()
