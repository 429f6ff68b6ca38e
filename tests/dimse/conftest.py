"""Fixtures for DIMSE tests: the session Orthanc as a DIMSE peer, dcmtk peers on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from pydicom.filereader import read_file_meta_info

from dicomstation.config import DimseServer
from dicomstation.database import Database
from dicomstation.nodes.dimse import DimseNode
from tests.peers import OrthancServer, bindlocal_library, free_port
from tests.synth import write_ct_series

#: pydicom test files with distinct SOP Instance UIDs, in several transfer syntaxes.
VARIED_FILES = (
    "CT_small.dcm",  # Explicit VR Little Endian
    "JPEG2000.dcm",  # JPEG 2000
    "JPEG-lossy.dcm",  # JPEG Extended
    "MR_small_RLE.dcm",  # RLE Lossless
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG Baseline, Secondary Capture
    "image_dfl.dcm",  # Deflated Explicit VR Little Endian
    "emri_small_jpeg_2k_lossless.dcm",  # JPEG 2000 lossless, multi-frame
)


def varied_files() -> list[Path]:
    """Real files in several SOP classes and transfer syntaxes (pydicom's test data)."""
    paths = [get_testdata_file(name) for name in VARIED_FILES]
    return [Path(p) for p in paths if p is not None]


def sop_uid(path: Path) -> str:
    """SOP Instance UID from a file's meta header."""
    return str(read_file_meta_info(path).MediaStorageSOPInstanceUID)


def orthanc_server(orthanc: OrthancServer, **kw: object) -> DimseServer:
    """The session Orthanc's DICOM port as a configured DIMSE server."""
    options: dict[str, object] = {"timeout": 20.0, **kw}
    return DimseServer("orthanc", orthanc.aet, "127.0.0.1", orthanc.dicom_port, **options)  # type: ignore[arg-type]


@pytest.fixture()
def node(orthanc: OrthancServer) -> DimseNode:
    """A DimseNode on the session Orthanc (C-GET retrieves)."""
    return DimseNode(orthanc_server(orthanc))


@pytest.fixture()
def db() -> Iterator[Database]:
    """An empty temporary local database."""
    with Database.temporary() as database:
        yield database


@pytest.fixture(scope="session")
def ct_series(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A synthetic 12-slice 64x64 CT series (files)."""
    return write_ct_series(
        tmp_path_factory.mktemp("ct"), 12, size=64, patient_name="DIMSE^TEST", patient_id="DIMSE1"
    )


def wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"peer exited early with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


def dcmtk_env(build_dir: Path) -> dict[str, str]:
    """Environment for dcmtk servers: loopback-only binds, Nagle off."""
    return dict(os.environ, LD_PRELOAD=str(bindlocal_library(build_dir)), TCP_NODELAY="1")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a peer and wait for it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class DcmtkPeer:
    """A running dcmtk server on loopback."""

    aet: str
    port: int
    folder: Path
    process: subprocess.Popen[bytes]

    def server(self, **kw: object) -> DimseServer:
        """As a configured DIMSE server."""
        options: dict[str, object] = {"timeout": 20.0, **kw}
        return DimseServer("dcmtk", self.aet, "127.0.0.1", self.port, **options)  # type: ignore[arg-type]


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"dcmtk {tool} is not installed")


@pytest.fixture()
def storescp(tmp_path: Path) -> Iterator[DcmtkPeer]:
    """dcmtk storescp writing what it receives, as received, into a folder."""
    _require("storescp")
    port, folder = free_port(), tmp_path / "storescp"
    folder.mkdir()
    process = subprocess.Popen(
        ["storescp", "-aet", "STORESCP", "+xa", "+B", "-od", str(folder), str(port)],
        env=dcmtk_env(tmp_path / "bindlocal"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, process)
        yield DcmtkPeer("STORESCP", port, folder, process)
    finally:
        stop(process)


@pytest.fixture()
def listener_port() -> int:
    """A free port for our storage listener (C-MOVE destination)."""
    return free_port()


@pytest.fixture()
def dcmqrscp(tmp_path: Path, listener_port: int) -> Iterator[DcmtkPeer]:
    """dcmtk dcmqrscp (Q/R SCP, C-FIND/C-GET/C-MOVE/C-STORE) knowing MOVEDEST@listener_port."""
    _require("dcmqrscp")
    port, folder = free_port(), tmp_path / "qrdb"
    folder.mkdir()
    config = tmp_path / "dcmqrscp.cfg"
    config.write_text(
        f"NetworkTCPPort = {port}\nMaxPDUSize = 16384\nMaxAssociations = 16\n"
        "HostTable BEGIN\n"
        f"movedest = (MOVEDEST, 127.0.0.1, {listener_port})\n"
        "HostTable END\nVendorTable BEGIN\nVendorTable END\n"
        f"AETable BEGIN\nQRSCP {folder} RW (200, 1024mb) ANY\nAETable END\n"
    )
    process = subprocess.Popen(
        ["dcmqrscp", "-c", str(config)],
        env=dcmtk_env(tmp_path / "bindlocal"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, process)
        yield DcmtkPeer("QRSCP", port, folder, process)
    finally:
        stop(process)


@pytest.fixture(autouse=True, params=["fast", "pynetdicom"])
def dimse_transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every DIMSE test runs on both transports (see nodes/dimse_transport.py).

    Set through the environment, so CLI subprocesses started by a test use it too.
    """
    from dicomstation.nodes.dimse_transport import ENV_VAR

    reason = FAST_PATH_ONLY.get(request.node.originalname)
    if request.param == "pynetdicom" and reason:
        pytest.skip(f"fast path only: {reason}")
    monkeypatch.setenv(ENV_VAR, str(request.param))
    return str(request.param)


#: Tests of properties only the fast path has (known differences of plain pynetdicom).
FAST_PATH_ONLY = {
    "test_store_is_bit_identical_at_storescp": (
        "pynetdicom decodes and re-encodes (deflated data sets come out different)"
    ),
    "test_abort_mid_instance_leaves_nothing": (
        "pynetdicom's SCP does not report an instance cut off by an abort as failed"
    ),
    "test_stalled_instance_times_out_and_the_rest_continue": (
        "pynetdicom reports a stalled C-STORE as an abort, not as a timeout"
    ),
}
