"""Success means safe on disk and indexed, even when the listener is killed or the disk fills.

* ``dicomstation listen`` is killed with SIGKILL right after answering Success: every
  instance it answered Success for is in the index, with its file, when the database
  is opened again; no ``.part`` is left and nothing is outside the database.
* A C-GET (both transports) is killed with SIGKILL right after its 12th C-STORE-RSP,
  before it indexed anything (fast path: it indexes in batches of 64): the answered
  instances wait in staging as complete files (``.part`` of the complete mode on the
  fast path: never renamed, their folder fsynced once per batch of names), and the
  next open of the database indexes every one of them.
* The database sits on a 3 MB file system (tmpfs; needs root, else skipped): when it
  fills, instances are refused with 0xA700 (out of resources) and a reason, every
  Success is indexed at the moment it arrives, the listener goes on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from dicomstation.database import Database
from dicomstation.nodes.listener import StorageListener
from tests.security.dimse_support import (
    GetScp,
    HostileScu,
    Sub,
    audit,
    complete_staged,
    ct_bytes,
    hostile_get_scp,
    staged,
)

# A C-GET client in its own process (the test kills it): the fast path or pynetdicom's
_GET_CLIENT = """
import sys
from pydicom.uid import generate_uid
from pynetdicom.sop_class import CTImageStorage
from dicomstation.config import DimseServer
from dicomstation.database import Database
from dicomstation.nodes.dimse_query import QueryRoot
from dicomstation.nodes.dimse_receive import Receiver
from dicomstation.nodes.dimse_retrieve import plan_request, retrieve_get

server = DimseServer("evil", "EVILPACS", "127.0.0.1", int(sys.argv[2]), timeout=10)
study = generate_uid()
with Database.open(sys.argv[1]) as db:
    receiver = Receiver(db, operation="C-GET")
    requests = plan_request(study, [], [], None, set())
    retrieve_get(server, requests, [str(CTImageStorage)], receiver, QueryRoot.STUDY, study, None)
"""


def _start_listen(db: Path, tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    env = dict(os.environ, DICOMSTATION_CONFIG=str(tmp_path / "settings.toml"))
    command = [sys.executable, "-m", "dicomstation.cli.main", "listen", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--ae", "LSN", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert "listening as LSN on 127.0.0.1:" in first, first
    return process, int(first.split("127.0.0.1:")[1].split(",")[0])


def test_kill_9_after_success_loses_nothing_answered(tmp_path: Path) -> None:
    sandbox = tmp_path / "sandbox"
    process, port = _start_listen(sandbox / "db", tmp_path)
    answered: list[str] = []
    try:
        scu = HostileScu(port)
        for n in range(15):
            uid = generate_uid()
            if scu.store(uid, ct_bytes(uid, size=64)).status == 0x0000:
                answered.append(uid)
            if n == 14:  # killed the moment the last Success arrived
                process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        scu.ae.shutdown()
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)
    assert len(answered) == 15
    with Database.open(sandbox / "db") as db:  # a new process: leftovers of the dead one
        assert db.has_instances(answered) == set(answered)
        assert all(db.instance_path(uid).is_file() for uid in answered)
        assert not [p for p in (db.root / "incoming").rglob("*.part")]
        assert audit(sandbox, db) == []


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs mounted in ``tmp_path`` (skips without the right to mount)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "pynetdicom-path"])
def test_disk_full_refuses_with_out_of_resources(small_disk: Path, fast: bool) -> None:
    answers: list[tuple[str, int, str, bool]] = []
    with (
        Database.open(small_disk / "db") as db,
        StorageListener(db, ae_title="LSN", port=0, fast=fast, timeout=10) as listener,
    ):
        scu = HostileScu(listener.port)
        try:
            for _ in range(40):  # 40 x 128 KB > 3 MB
                uid = generate_uid()
                answer = scu.store(uid, ct_bytes(uid, size=256))
                indexed = bool(db.has_instances([uid])) and db.instance_path(uid).is_file()
                answers.append((uid, answer.status, answer.comment, indexed))
        finally:
            with contextlib.suppress(Exception):
                scu.close()
        listener.stop()
        statuses = {status for _u, status, _c, _i in answers}
        assert 0x0000 in statuses and statuses <= {0x0000, 0xA700}, statuses
        assert all(indexed for _u, status, _c, indexed in answers if status == 0)
        failed = [(uid, comment) for uid, status, comment, _i in answers if status]
        assert failed and all(comment for _uid, comment in failed)
        assert not db.has_instances(uid for uid, _c in failed)
        assert set(listener.report.failed) == {uid for uid, _c in failed}


@pytest.mark.parametrize("transport", ["fast", "pynetdicom"])
def test_cget_killed_after_success_loses_nothing_answered(tmp_path: Path, transport: str) -> None:
    uids = [generate_uid() for _ in range(20)]
    subs = [Sub(uid, ct_bytes(uid, size=64)) for uid in uids]
    child: list[subprocess.Popen[str]] = []

    def kill_after_12(seen: GetScp) -> bool:
        if len(seen.responses) < 12:
            return False
        child[0].send_signal(signal.SIGKILL)  # the moment the 12th Success arrived
        return True

    env = dict(os.environ, DICOMSTATION_DIMSE_TRANSPORT=transport)
    with Database.open(tmp_path / "db") as db:
        seen, stop = hostile_get_scp(subs, db, after=kill_after_12)
        try:
            args = [sys.executable, "-c", _GET_CLIENT, str(db.root), str(seen.port)]
            child.append(subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=env))
            _out, err = child[0].communicate(timeout=60)
        finally:
            stop()
        assert child[0].returncode == -signal.SIGKILL, err
        assert seen.errors == []
        answered = [uid for uid, status, _c, safe in seen.responses if status == 0 and safe]
        assert answered == uids[:12]  # each safe on disk the moment its Success arrived
        waiting = [p for p in staged(db) if complete_staged(p)]
        if transport == "fast":  # acknowledged, not indexed yet: complete, never renamed
            assert len(waiting) == 12 and {p.suffix for p in waiting} == {".part"}
            assert db.has_instances(uids) == set()
    with Database.open(tmp_path / "db") as db:  # a new process's open: the dead one's files
        assert db.has_instances(uids) == set(answered)
        for uid in answered:
            assert str(dcmread(db.instance_path(uid)).SOPInstanceUID) == uid
        assert staged(db) == []
        assert audit(tmp_path, db) == []
