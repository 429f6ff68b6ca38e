"""Deferred indexing of acknowledged instances (a C-GET's way), beyond one batch.

A C-GET answers Success once an instance is safe on disk and indexes later, on its
own thread between two sub-operations (``Receiver.drain_if_full``), once 512
acknowledged instances or 8 MiB of their first bytes wait: the memory they hold is
bounded whatever the peer sends, and no second thread takes the GIL from the
receiving one (a background indexing thread did, and cost more CPU than it hid).
Instances fed as the fast C-GET reader feeds them: every one is indexed once the
receiver finishes, by the receiving thread, in bounded batches, nothing is left in
staging.
"""

from __future__ import annotations

import threading
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom.sop_class import CTImageStorage

from dicomstation.database import Database
from dicomstation.nodes import dimse_receive
from dicomstation.nodes.dimse_instance import StoreRequest
from dicomstation.nodes.dimse_receive import Receiver
from tests.security.dimse_support import ct_bytes


class _Watched(Receiver):
    """A receiver that records which threads index batches (our own subclass)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, operation="C-GET")
        self.batches: list[tuple[str, int]] = []

    def _commit_batch(self, batch: list[dimse_receive._Job]) -> None:
        self.batches.append((threading.current_thread().name, len(batch)))
        super()._commit_batch(batch)


def _receive(tmp_path: Path, count: int, size: int) -> tuple[_Watched, int, list[str]]:
    ct = str(CTImageStorage)
    uids = [generate_uid() for _ in range(count)]
    study = generate_uid()
    backlog = 0
    with Database.open(tmp_path / "db") as db:
        receiver = _Watched(db)
        for uid in uids:
            request = StoreRequest(ct, uid, ct, str(ExplicitVRLittleEndian), "QR", "C-GET test")
            incoming = receiver.begin(request)
            incoming.write(ct_bytes(uid, study, size=size))
            assert incoming.finish(defer=True).ok
            backlog = max(backlog, receiver.backlog())
            receiver.drain_if_full()
        report = receiver.finish()
        assert sorted(report.succeeded) == sorted(uids) and not report.failed
        assert db.has_instances(uids) == set(uids)
        assert not [p for p in (db.root / "incoming").rglob("*") if p.is_file()]
    return receiver, backlog, uids


def test_acknowledged_instances_indexed_in_bounded_batches_on_the_receiving_thread(
    tmp_path: Path,
) -> None:
    receiver, backlog, uids = _receive(tmp_path, 600, 16)
    assert backlog == dimse_receive._DEFERRED_BATCH  # indexed as the 512th arrived
    me = threading.current_thread().name
    assert receiver.batches == [(me, 512), (me, len(uids) - 512)]


def test_large_instances_are_indexed_by_the_bytes_they_hold(tmp_path: Path) -> None:
    receiver, backlog, uids = _receive(tmp_path, 300, 256)  # 128 KiB each: 64 KiB heads
    per_batch = dimse_receive._DEFERRED_BYTES // (64 * 1024)
    assert backlog == per_batch
    assert [n for _name, n in receiver.batches[:2]] == [per_batch, per_batch]
    assert sum(n for _name, n in receiver.batches) == len(uids)
