"""Hostile DIMSE peers for the receive-side attack tests (loopback only, bounded).

* :class:`HostileScu` associates with a listener through pynetdicom, then takes the
  socket and sends whatever C-STORE-RQ command and data set bytes a test wants
  (a traversal UID, a UID that is not the data set's, garbage...), and reads the
  C-STORE-RSP (status and ErrorComment).
* :func:`hostile_get_scp` is a C-GET SCP that answers every C-GET with crafted
  C-STORE sub-operations written raw on the association.
* :func:`ct_bytes` / :func:`mr_bytes` encode small, valid data sets; :func:`audit`
  lists every file under a folder outside the database.
"""

from __future__ import annotations

import contextlib
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, build_context, evt
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import (
    CTImageStorage,
    MRImageStorage,
    StudyRootQueryRetrieveInformationModelGet,
    Verification,
)

from dicomstation.database import Database
from dicomstation.database.leftovers import COMPLETE_PART_MODE
from dicomstation.nodes.dimse_assoc import new_ae
from dicomstation.nodes.dimse_fastsend import command_set
from dicomstation.nodes.dimse_pdu import (
    PduReader,
    frame_data,
    own_socket,
    parse_command,
    pdvs,
    send_message,
    text_field,
    us_field,
)
from tests.peers import free_port
from tests.synth import write_ct_series

__all__ = [
    "HostileScu",
    "Sub",
    "audit",
    "ct_bytes",
    "ct_series",
    "hostile_get_scp",
    "mr_bytes",
    "read_abort_or_close",
    "staged",
]

TRAVERSAL = "../../../target/PWNED"


def _image(
    sop_class: str, modality: str, sop_uid: str | None, study: str | None, size: int = 16
) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    if sop_uid is not None:
        ds.SOPInstanceUID = sop_uid
    ds.PatientName = "HOSTILE^TEST"
    ds.PatientID = "SEC1"
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.InstanceNumber = 1
    ds.Rows = ds.Columns = size
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes(range(256)) * (size * size // 128)
    return ds


def _encode(ds: Dataset) -> bytes:
    data: bytes | None = encode(ds, False, True)  # Explicit VR Little Endian
    assert data is not None
    return data


def ct_bytes(sop_uid: str | None, study: str | None = None, size: int = 16) -> bytes:
    """A valid CT data set, ``size`` pixels square (Explicit VR LE, no meta); no UID if None."""
    return _encode(_image(str(CTImageStorage), "CT", sop_uid, study, size))


def mr_bytes(sop_uid: str) -> bytes:
    """A small valid MR data set (Explicit VR LE, no file meta)."""
    return _encode(_image(str(MRImageStorage), "MR", sop_uid, None))


@dataclass(frozen=True)
class Response:
    """A C-STORE-RSP as read: status and ErrorComment."""

    status: int
    comment: str


class HostileScu:
    """One association to a storage SCP; sends crafted C-STOREs on its raw socket."""

    def __init__(self, port: int, calling: str = "HOSTILE", called: str = "LSN") -> None:
        self.ae = new_ae(calling)  # our own association objects: own_socket takes them over
        self.ae.acse_timeout = self.ae.dimse_timeout = self.ae.network_timeout = 10
        contexts = [
            build_context(CTImageStorage, [ExplicitVRLittleEndian]),
            build_context(MRImageStorage, [ExplicitVRLittleEndian]),
            build_context(Verification),
        ]
        self.ae.requested_contexts = contexts
        self.assoc = self.ae.associate("127.0.0.1", port, ae_title=called)
        assert self.assoc.is_established, "the listener did not accept the association"
        self.contexts = {
            str(cx.abstract_syntax): int(cx.context_id) for cx in self.assoc.accepted_contexts
        }
        self._msg = 0

    @contextlib.contextmanager
    def raw(self) -> Iterator[socket.socket]:
        """The association's socket, pynetdicom's reader paused."""
        with own_socket(self.assoc, 10) as sock:
            yield sock

    def store(
        self,
        sop_uid: str,
        data: bytes,
        *,
        sop_class: str = str(CTImageStorage),
        context_class: str | None = None,
        fragment: int = 4000,
    ) -> Response:
        """Send one C-STORE-RQ (command says ``sop_class``/``sop_uid``) + ``data``; read the RSP."""
        self._msg += 1
        context = self.contexts[context_class or sop_class]
        with self.raw() as sock:
            send_message(sock, context, command_set(sop_class, sop_uid, self._msg), None, 16384)
            sock.sendall(frame_data(context, data, fragment, last=True))
            return read_response(sock)

    def close(self) -> None:
        """Release (or abort, if the peer already ended the association)."""
        if self.assoc.is_established:
            self.assoc.release()
        self.ae.shutdown()


def read_response(sock: socket.socket) -> Response:
    """Read one DIMSE command (a response) from ``sock``: its status and ErrorComment."""
    reader = PduReader(sock)
    command = bytearray()
    try:
        while True:
            kind, body = reader.pdu()
            assert kind == 0x04, f"expected P-DATA-TF, got PDU type 0x{kind:02X}"
            for _cx, control, item in pdvs(body):
                command += item
                if control & 0x03 == 0x03:
                    fields = parse_command(bytes(command))
                    return Response(us_field(fields, 0x0900, -1), text_field(fields, 0x0902))
    finally:
        reader.close()


def read_abort_or_close(sock: socket.socket, timeout: float) -> str:
    """Wait for the peer to end the association: "abort" (A-ABORT PDU) or "closed"."""
    sock.settimeout(timeout)
    try:
        head = sock.recv(1)
    except ConnectionResetError:
        return "closed"
    if not head:
        return "closed"
    return "abort" if head[0] == 0x07 else f"PDU type 0x{head[0]:02X}"


def staged(db: Database) -> list[Path]:
    """Instance files (``.part``, ``.dcm``) left in the database's staging area."""
    incoming = db.root / "incoming"
    return [p for p in incoming.rglob("*") if p.is_file() and p.suffix in (".part", ".dcm")]


def audit(top: Path, db: Database) -> list[Path]:
    """Every file under ``top`` that is not inside the database folder."""
    inside = db.root.resolve()
    return [
        p
        for p in top.rglob("*")
        if p.is_file() and inside not in p.resolve().parents and p.resolve() != inside
    ]


@dataclass(frozen=True)
class Sub:
    """One C-STORE sub-operation the hostile C-GET SCP sends."""

    sop_uid: str
    data: bytes
    sop_class: str = str(CTImageStorage)
    huge_pdu: bool = False  # send a P-DATA-TF header announcing 1.5 GB instead


@dataclass
class GetScp:
    """A running hostile C-GET SCP and what it saw."""

    port: int
    responses: list[tuple[str, int, str, bool]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _sub_operation(event: Any, sub: Sub, db: Database, seen: GetScp) -> None:
    assoc = event.assoc
    cx = next(
        int(c.context_id)
        for c in assoc.accepted_contexts
        if str(c.abstract_syntax) == sub.sop_class
    )
    sock = assoc.dul.socket.socket
    if sub.huge_pdu:
        send_message(sock, cx, command_set(sub.sop_class, sub.sop_uid, 7), None, 16384)
        sock.sendall(struct.pack(">BBI", 0x04, 0, 1_500_000_000) + b"\x00" * 4096)
        return
    send_message(sock, cx, command_set(sub.sop_class, sub.sop_uid, 7), sub.data, 16384)
    _cx, rsp = assoc.dimse.get_msg(block=True)
    if rsp is None:
        seen.errors.append(f"no C-STORE-RSP for {sub.sop_uid}")
        return
    status = int(rsp.Status)
    # the moment Success arrives, the instance must be safe on disk: in the index, or
    # (a C-GET acknowledges before indexing, issue 15) a complete file in the staging
    # area (.dcm, or .part marked complete), which the next open of the database indexes
    indexed = bool(db.has_instances([sub.sop_uid])) and db.instance_path(sub.sop_uid).is_file()
    indexed = indexed or _staged_complete(db, sub.sop_uid)
    comment = str(getattr(rsp, "ErrorComment", "") or "")
    seen.responses.append((sub.sop_uid, status, comment, indexed))


def _staged_complete(db: Database, sop_uid: str) -> bool:
    """True if a complete received file of ``sop_uid`` waits in the staging area."""
    for path in (db.root / "incoming").rglob("*"):
        with contextlib.suppress(OSError, ValueError):
            if complete_staged(path) and str(dcmread(path).SOPInstanceUID) == sop_uid:
                return True
    return False


def complete_staged(path: Path) -> bool:
    """A staged file the next open indexes: ``.dcm``, or ``.part`` of the complete mode."""
    info = path.lstat()
    mode = stat.S_IMODE(info.st_mode)
    marked = path.suffix == ".part" and mode == COMPLETE_PART_MODE
    return stat.S_ISREG(info.st_mode) and (path.suffix == ".dcm" or marked)


def hostile_get_scp(
    subs: Sequence[Sub],
    db: Database,
    *,
    aet: str = "EVILPACS",
    after: Callable[[GetScp], bool] | None = None,
) -> tuple[GetScp, Callable[[], None]]:
    """Start a C-GET SCP answering every C-GET with ``subs``; return it and a stop function.

    ``after`` runs once each C-STORE-RSP arrived; when it returns True the SCP sends
    nothing more (e.g. it killed the client).
    """
    seen = GetScp(free_port())

    def on_get(event: Any) -> Iterator[Any]:
        yield len(subs)
        for sub in subs:
            try:
                _sub_operation(event, sub, db, seen)
            except Exception as exc:  # the test asserts on what the client did
                seen.errors.append(f"{type(exc).__name__}: {exc}")
                return
            if after is not None and after(seen):
                return
        final = Dataset()
        final.Status = 0x0000
        yield final, None

    ae = AE(ae_title=aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelGet)
    for sop_class in (CTImageStorage, MRImageStorage):
        ae.add_supported_context(sop_class, [ExplicitVRLittleEndian], scu_role=True, scp_role=True)
    server = ae.start_server(
        ("127.0.0.1", seen.port), block=False, evt_handlers=[(evt.EVT_C_GET, on_get)]
    )

    def stop() -> None:
        server.shutdown()
        ae.shutdown()

    return seen, stop


def wait_until(check: Callable[[], bool], timeout: float) -> bool:
    """Poll ``check`` until it is true or ``timeout`` seconds passed; its last value."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def concurrently(jobs: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run ``jobs`` in threads at once; their results in order (re-raising failures)."""
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs))

    def run(i: int) -> None:
        try:
            start.wait(10)
            results[i] = jobs[i]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]
    return results


@pytest.fixture(scope="module")
def ct_series(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A synthetic 6-slice 32x32 CT series (files)."""
    return write_ct_series(
        tmp_path_factory.mktemp("ct"), 6, size=32, patient_name="SEC^DIMSE", patient_id="SEC2"
    )
