"""Real peers for tests and benchmarks: Orthanc (with DICOMweb) started on loopback.

Orthanc 1.10 (Debian 12) has no bind-address option, so it is started with a
tiny LD_PRELOAD shim (``peers_src/bindlocal.c``, compiled on first use) that
turns wildcard binds into loopback binds: nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ORTHANC_USER = "tester"
ORTHANC_PASSWORD = "orthanc-test-pw"  # a throwaway secret for the throwaway server
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[None]:
    """Serve ``server`` (bound to 127.0.0.1 by the caller) on a thread; stop and close it after."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def bindlocal_library(build_dir: Path) -> Path:
    """Compile (once) and return the loopback-only bind shim."""
    out = build_dir / "libbindlocal.so"
    if not out.exists():
        build_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "cc",
                "-shared",
                "-fPIC",
                "-O2",
                "-o",
                str(out),
                str(HERE / "peers_src" / "bindlocal.c"),
                "-ldl",
            ],
            check=True,
        )
    return out


@dataclass
class OrthancServer:
    """A running Orthanc on loopback with the DICOMweb plugin and Basic auth."""

    http_port: int
    dicom_port: int
    workdir: Path
    process: subprocess.Popen[bytes]
    aet: str = "ORTHANC"
    user: str = ORTHANC_USER
    password: str = ORTHANC_PASSWORD
    modalities: dict[str, list[object]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Root of the Orthanc REST API."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        """Root of the DICOMweb API (QIDO/WADO/STOW)."""
        return f"{self.url}/dicom-web"

    def rest(self) -> httpx.Client:
        """An authenticated client on the REST API."""
        return httpx.Client(base_url=self.url, auth=(self.user, self.password), timeout=60)

    def upload(self, *paths: Path) -> list[str]:
        """Store files through the REST API; return Orthanc instance ids."""
        ids = []
        with self.rest() as client:
            for path in paths:
                response = client.post("/instances", content=Path(path).read_bytes())
                response.raise_for_status()
                ids.append(response.json()["ID"])
        return ids

    def clear(self) -> None:
        """Delete every patient (and so every study) stored in Orthanc."""
        with self.rest() as client:
            for patient in client.get("/patients").json():
                client.delete(f"/patients/{patient}").raise_for_status()

    def add_modality(self, name: str, aet: str, port: int, host: str = "127.0.0.1") -> None:
        """Declare a DICOM modality (e.g. our C-MOVE destination) at run time."""
        with self.rest() as client:
            body = {"AET": aet, "Host": host, "Port": port}
            client.put(f"/modalities/{name}", json=body).raise_for_status()

    def count_instances(self) -> int:
        """Number of instances Orthanc stores."""
        with self.rest() as client:
            return int(client.get("/statistics").json()["CountInstances"])

    def stop(self) -> None:
        """Stop the server and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def orthanc_config(workdir: Path, http_port: int, dicom_port: int) -> dict[str, object]:
    """The configuration for a throwaway test Orthanc."""
    return {
        "Name": "dicomstation-test",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {ORTHANC_USER: ORTHANC_PASSWORD},
        "HttpCompressionEnabled": False,
        "StorageCompression": False,
        "DicomCheckCalledAeTitle": False,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "UnknownSopClassAccepted": True,
        "DicomModalities": {
            "dicomstation": ["DICOMSTATION", "127.0.0.1", 11112],
            "storescu": ["STORESCU", "127.0.0.1", 11113],
            "findscu": ["FINDSCU", "127.0.0.1", 11114],
            "getscu": ["GETSCU", "127.0.0.1", 11115],
        },
        "DicomModalitiesInDatabase": False,
        "SaveJobs": False,
        "Plugins": [DICOMWEB_PLUGIN],
        "DicomWeb": {
            "Enable": True,
            "Root": "/dicom-web/",
            "EnableWado": True,
            "StudiesMetadata": "Full",
            "SeriesMetadata": "Full",
        },
    }


def start_orthanc(workdir: Path, timeout: float = 60.0) -> OrthancServer:
    """Start Orthanc on free loopback ports in ``workdir``; wait until it answers."""
    http_port, dicom_port = free_port(), free_port()
    config = workdir / "orthanc.json"
    config.write_text(json.dumps(orthanc_config(workdir, http_port, dicom_port), indent=2))
    env = dict(os.environ, LD_PRELOAD=str(bindlocal_library(workdir.parent / "bindlocal")))
    log = (workdir / "orthanc.log").open("wb")
    process = subprocess.Popen(
        ["Orthanc", str(config)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir
    )
    server = OrthancServer(http_port, dicom_port, workdir, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited early, see {workdir / 'orthanc.log'}")
        try:
            with server.rest() as client:
                if client.get("/system").status_code == 200:
                    return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"Orthanc did not start within {timeout}s, see {workdir / 'orthanc.log'}")
