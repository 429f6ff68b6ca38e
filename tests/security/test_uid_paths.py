"""A UID from a server's answer never becomes a request path of its own choosing.

A hostile (or broken) QIDO-RS server answering StudyInstanceUID ``1.2/../../admin`` made the
next WADO-RS request ``GET /admin...`` on the same origin, with the user's credentials (httpx
resolves the dot segments), and a UPS-RS worklist could do the same with a workitem UID.
Every request path is now checked: a segment that is empty, ``.`` or ``..``, or a character a
DICOMweb path never needs, is refused before anything is sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from dicomstation.config import DicomWebServer
from dicomstation.database import Database
from dicomstation.errors import DicomStationError
from dicomstation.models import Level, Query
from dicomstation.nodes import open_node
from dicomstation.pipeline.ups_worker import Claim, UpsClient
from tests.peers import serving

HOSTILE = ["1.2/../../admin", "..", "1.2?x=1", "1.2#x", "1.2%2F..%2Fadmin", "1.2 3"]


class _Hostile(BaseHTTPRequestHandler):
    """QIDO-RS answers with a chosen study UID; every path asked is recorded."""

    uid = ""
    seen: ClassVar[list[str]] = []
    lock = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            self.seen.append(self.path)
        body = json.dumps([{"0020000D": {"vr": "UI", "Value": [self.uid]}}]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture()
def hostile() -> Iterator[tuple[str, type[_Hostile]]]:
    handler = type("Handler", (_Hostile,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    with serving(server):
        yield f"http://127.0.0.1:{server.server_address[1]}/dicom-web", handler


@pytest.mark.parametrize("uid", HOSTILE)
def test_a_hostile_study_uid_is_never_requested(
    hostile: tuple[str, type[_Hostile]], uid: str, tmp_path: Path
) -> None:
    url, handler = hostile
    handler.uid = uid
    node = open_node(DicomWebServer("evil", url, timeout=10))
    (ref,) = node.find(Query(Level.STUDY))
    assert ref.study_uid == uid
    with Database.open(tmp_path / "db") as db:
        for call in (
            lambda: node.metadata(ref.study_uid),
            lambda: node.metadata("1.2.3", ref.study_uid),
            lambda: node.retrieve(ref.study_uid, into=db),
            lambda: list(node.iter_frames("1.2.3", ref.study_uid, "1.2.4", [1])),
        ):
            with pytest.raises(DicomStationError) as info:
                call()
            assert "not a DICOM UID" in str(info.value) or "path" in str(info.value)
    asked = [p for p in handler.seen if not p.startswith("/dicom-web/studies?")]
    assert asked == [], asked  # only the QIDO query itself reached the server


def test_an_empty_study_uid_is_refused(hostile: tuple[str, type[_Hostile]]) -> None:
    url, handler = hostile
    with pytest.raises(DicomStationError, match="not a DICOM UID"):
        open_node(DicomWebServer("evil", url, timeout=10)).metadata("")
    assert handler.seen == []


def test_a_hostile_workitem_uid_is_never_requested(hostile: tuple[str, type[_Hostile]]) -> None:
    """A UPS-RS worklist's workitem UID goes into GET, PUT and POST paths: checked too."""
    url, handler = hostile
    with httpx.Client(timeout=10) as http:
        client = UpsClient(DicomWebServer("worklist", url, timeout=10), http)
        for call in (
            lambda: client.workitem("1.2/../../admin"),
            lambda: client.claim("..", 60.0),
            lambda: client.update(Claim("1.2?x", "1.2.3"), {}),
        ):
            with pytest.raises(DicomStationError, match="not a DICOM UID"):
                call()
    assert handler.seen == []
