"""Resource limits of the storage listener under attack, on loopback, bounded in time.

* a P-DATA-TF PDU announcing 1.5 GB (more than the 4 MiB we announce) aborts the
  association on its header: nothing more is read, memory does not grow;
* idle TCP connections are closed after the ACSE timeout and cannot keep real
  associations out for longer; an idle association is aborted after the idle
  timeout; associations beyond the maximum are rejected;
* a calling-AE allow list rejects other callers (Python API and ``listen --allow-ae``);
* listener errors name the peer ("C-STORE from <AE> (<host>:<port>)"), never "C-GET".
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from dicomstation.config import DimseServer
from dicomstation.database import Database
from dicomstation.errors import AssociationError, AuthenticationError, ConfigError, NodeError
from dicomstation.nodes.dimse import DimseNode
from dicomstation.nodes.dimse_pdu import encode_command, send_message, uid_value, us_value
from dicomstation.nodes.listener import StorageListener
from tests.security.dimse_support import (
    HostileScu,
    ct_bytes,
    ct_series,
    read_abort_or_close,
    wait_until,
)

__all__ = ["ct_series"]  # a fixture from dimse_support
_HUGE = 1_500_000_000


@pytest.fixture(params=[True, False], ids=["fast-path", "pynetdicom-path"])
def fast(request: pytest.FixtureRequest) -> bool:
    """Which receive path the listener uses."""
    return bool(request.param)


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    """A database in ``tmp_path``."""
    with Database.open(tmp_path / "db") as database:
        yield database


def _echo(port: int, calling: str = "DICOMSTATION") -> int:
    server = DimseServer("me", "LSN", "127.0.0.1", port, calling_ae=calling, timeout=5)
    return DimseNode(server).echo()


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_pdu_longer_than_announced_aborts_on_its_header(db: Database, fast: bool) -> None:
    with StorageListener(db, ae_title="LSN", port=0, fast=fast, timeout=10) as listener:
        before = _max_rss_mb()
        scu = HostileScu(listener.port)
        try:
            with scu.raw() as sock:
                sock.sendall(struct.pack(">BBI", 0x04, 0, _HUGE) + b"\x00" * 4096)
                # nothing more is sent: the listener must end the association by itself
                assert read_abort_or_close(sock, 5) in ("abort", "closed")
        finally:
            scu.ae.shutdown()
        assert _max_rss_mb() - before < 100
        assert _echo(listener.port) > 0  # the listener still serves


def test_huge_association_request_is_not_read(db: Database, fast: bool) -> None:
    with StorageListener(db, ae_title="LSN", port=0, fast=fast, timeout=10) as listener:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as sock:
            sock.sendall(struct.pack(">BBI", 0x01, 0, _HUGE) + b"\x00" * 4096)
            assert read_abort_or_close(sock, 5) in ("abort", "closed")
        assert _echo(listener.port) > 0


def test_idle_connections_do_not_keep_associations_out(db: Database, fast: bool) -> None:
    with StorageListener(
        db, ae_title="LSN", port=0, fast=fast, timeout=10, acse_timeout=1, max_associations=3
    ) as listener:
        idle = [socket.create_connection(("127.0.0.1", listener.port)) for _ in range(12)]
        started = time.monotonic()
        try:

            def echo_works() -> bool:
                try:
                    return _echo(listener.port) > 0
                except NodeError:  # rejected (too many) or closed (over the connection cap)
                    return False

            assert wait_until(echo_works, 6), "idle connections kept associations out"
            assert time.monotonic() - started < 6
            for sock in idle:  # each is closed by the listener after the ACSE timeout
                assert read_abort_or_close(sock, 4) in ("abort", "closed")
        finally:
            for sock in idle:
                sock.close()


def _trickle(sock: socket.socket, seconds: float) -> float | None:
    """Send a byte every 0.3 s; when the peer closed the connection (None: it did not)."""
    started = time.monotonic()
    sock.settimeout(0.3)
    while time.monotonic() - started < seconds:
        try:
            sock.sendall(b"\x00")
            if sock.recv(64) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started
    return None


def test_a_trickled_association_request_is_cut_off(db: Database, fast: bool) -> None:
    with StorageListener(db, ae_title="LSN", port=0, fast=fast, acse_timeout=1) as listener:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as sock:
            sock.sendall(struct.pack(">BBI", 0x01, 0, 300))  # then one byte at a time
            closed = _trickle(sock, 8)
        assert closed is not None and closed < 4, closed
        assert _echo(listener.port) > 0


def test_a_trickled_pdu_is_cut_off(db: Database) -> None:
    """Fast path: a PDU must be complete within the idle timeout (+1 s per 32 KiB)."""
    with StorageListener(db, ae_title="LSN", port=0, timeout=1.5) as listener:
        scu = HostileScu(listener.port)
        try:
            with scu.raw() as sock:
                sock.sendall(struct.pack(">BBI", 0x04, 0, 300))  # never idle, never done
                closed = _trickle(sock, 8)
        finally:
            scu.ae.shutdown()
        assert closed is not None and closed < 5, closed


def test_idle_association_is_aborted(db: Database, fast: bool) -> None:
    with StorageListener(db, ae_title="LSN", port=0, fast=fast, timeout=1) as listener:
        scu = HostileScu(listener.port)
        try:
            with scu.raw() as sock:
                started = time.monotonic()
                assert read_abort_or_close(sock, 6) in ("abort", "closed")
                assert time.monotonic() - started < 5
        finally:
            scu.ae.shutdown()


def test_associations_beyond_the_maximum_are_rejected(db: Database, fast: bool) -> None:
    with StorageListener(db, ae_title="LSN", port=0, fast=fast, max_associations=2) as listener:
        held = [HostileScu(listener.port) for _ in range(2)]
        try:
            with pytest.raises(AssociationError):
                _echo(listener.port)
        finally:
            for scu in held:
                scu.close()
        assert wait_until(lambda: _echo_ok(listener.port), 5)


def _echo_ok(port: int) -> bool:
    try:
        return _echo(port) > 0
    except NodeError:
        return False


def test_instance_larger_than_the_cap_is_refused(db: Database, fast: bool) -> None:
    small, big = generate_uid(), generate_uid()
    with StorageListener(
        db, ae_title="LSN", port=0, fast=fast, max_instance_bytes=20_000
    ) as listener:
        scu = HostileScu(listener.port)
        try:
            refused = scu.store(big, ct_bytes(big, size=128))  # 32 KB of pixels
            accepted = scu.store(small, ct_bytes(small, size=64))  # 8 KB
        finally:
            scu.close()
    assert refused.status == 0xA700 and "larger than 20000 bytes" in refused.comment
    assert accepted.status == 0x0000
    assert db.has_instances([small, big]) == {small}


def test_calling_ae_allow_list(db: Database, fast: bool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with StorageListener(
        db, ae_title="LSN", port=0, fast=fast, allow_ae=["MODALITY1", "PACS2"]
    ) as listener:
        with pytest.raises(AuthenticationError):
            _echo(listener.port, calling="INTRUDER")
        assert "INTRUDER" in caplog.text and "not in the allow list" in caplog.text
        assert _echo(listener.port, calling="PACS2") > 0
        uid = generate_uid()
        scu = HostileScu(listener.port, calling="MODALITY1")
        try:
            assert scu.store(uid, ct_bytes(uid)).status == 0x0000
        finally:
            scu.close()
    assert listener.allow_ae == ("MODALITY1", "PACS2")


@pytest.mark.parametrize("bad", [["A" * 17], ["BAD\\AE"], [""]])
def test_invalid_allow_list_is_a_config_error(db: Database, bad: list[str]) -> None:
    with pytest.raises(ConfigError, match="allow list"):
        StorageListener(db, port=0, allow_ae=bad)


def test_listener_errors_name_the_peer_not_c_get(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with StorageListener(db, ae_title="LSN", port=0) as listener:
        scu = HostileScu(listener.port, calling="WEIRDPEER")
        try:
            find = encode_command(
                {
                    0x0002: uid_value("1.2.840.10008.5.1.4.1.2.2.1"),
                    0x0100: us_value(0x0020),  # C-FIND-RQ on a storage association
                    0x0110: us_value(1),
                    0x0800: us_value(0x0101),
                }
            )
            with scu.raw() as sock:
                send_message(sock, next(iter(scu.contexts.values())), find, None, 16384)
                assert read_abort_or_close(sock, 5) == "abort"
        finally:
            scu.ae.shutdown()
        assert wait_until(lambda: "association aborted" in caplog.text, 5)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("dicomstation")]
    assert any("C-STORE from WEIRDPEER (127.0.0.1:" in line for line in lines), lines
    assert not any("C-GET" in line for line in lines), lines


@pytest.mark.dcmtk
def test_listen_cli_allow_ae_and_timeouts(tmp_path: Path, ct_series: list[Path]) -> None:
    if shutil.which("storescu") is None:
        pytest.skip("dcmtk storescu is not installed")
    env = dict(os.environ, DICOMSTATION_CONFIG=str(tmp_path / "settings.toml"))
    command = [
        *(sys.executable, "-m", "dicomstation.cli.main", "listen", "--port", "0"),
        *("--ae", "LSN", "--db", str(tmp_path / "db"), "--allow-ae", "GOOD"),
        *("--allow-ae", "ALSOGOOD", "--acse-timeout", "2", "--idle-timeout", "5"),
        *("--max-associations", "4"),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "listening as LSN on 127.0.0.1:" in first, first
        port = first.split("127.0.0.1:")[1].split(",")[0]

        def storescu(aet: str) -> subprocess.CompletedProcess[bytes]:
            args = ["storescu", "-aet", aet, "-aec", "LSN", "127.0.0.1", port]
            return subprocess.run([*args, *map(str, ct_series)], capture_output=True, timeout=60)

        assert storescu("INTRUDER").returncode != 0
        sent = storescu("GOOD")
        assert sent.returncode == 0, sent.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"stopped: {len(ct_series)} received" in out
    assert "INTRUDER" in err and "rejected" in err
