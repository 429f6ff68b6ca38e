"""Deferred indexing of acknowledged instances (a C-GET's way), beyond one batch.

A C-GET answers Success once an instance is safe on disk and indexes in batches of
64 on a background thread (``Receiver.drain_soon``) while it receives the next
ones. 140 instances fed as the fast C-GET reader feeds them: every one is indexed
once the receiver finishes, the background thread indexed whole batches (not the
receiving thread), the backlog stays bounded, and nothing is left in staging.
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


def test_acknowledged_instances_indexed_in_background_batches(tmp_path: Path) -> None:
    ct = str(CTImageStorage)
    uids = [generate_uid() for _ in range(140)]
    study = generate_uid()
    backlog = 0
    with Database.open(tmp_path / "db") as db:
        receiver = _Watched(db)
        for uid in uids:
            request = StoreRequest(ct, uid, ct, str(ExplicitVRLittleEndian), "QR", "C-GET test")
            incoming = receiver.begin(request)
            incoming.write(ct_bytes(uid, study, size=16))
            assert incoming.finish(defer=True).ok
            backlog = max(backlog, receiver.backlog())
            if receiver.backlog() >= 64:
                receiver.drain_soon()
        report = receiver.finish()
        assert sorted(report.succeeded) == sorted(uids) and not report.failed
        assert db.has_instances(uids) == set(uids)
        assert backlog <= dimse_receive._MAX_BACKLOG + 1
        background = [n for name, n in receiver.batches if name == "dicomstation-index"]
        assert background and all(n == 64 for n in background)
        assert sum(n for _name, n in receiver.batches) == 140
        assert not [p for p in (db.root / "incoming").rglob("*") if p.is_file()]
