"""Attacks on ``fetch`` over C-GET: a hostile PACS sends lying C-STORE sub-operations.

The hostile C-GET SCP (our own, on loopback) writes crafted C-STORE-RQs on the
association: a traversal UID, a UID that is not the data set's, half a data set, a
PDU announcing 1.5 GB. The client must refuse each with a status and a reason,
write nothing outside the database, answer Success only for indexed instances, and
abort (a ProtocolError naming the server) on a PDU longer than it announced.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from pynetdicom.sop_class import CTImageStorage, MRImageStorage

from dicomstation.config import DimseServer
from dicomstation.database import Database
from dicomstation.errors import NodeError, ProtocolError
from dicomstation.nodes.dimse_query import QueryRoot
from dicomstation.nodes.dimse_receive import Receiver
from dicomstation.nodes.dimse_retrieve import plan_request, retrieve_get
from tests.security.dimse_support import (
    TRAVERSAL,
    Sub,
    audit,
    ct_bytes,
    hostile_get_scp,
    mr_bytes,
    staged,
)

CLASSES = [str(CTImageStorage), str(MRImageStorage)]


@pytest.fixture(params=[True, False], ids=["fast-path", "pynetdicom-path"])
def fast(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[bool]:
    """Run with the fast C-GET reader, or with pynetdicom's send_c_get."""
    if not request.param:
        import dicomstation.nodes.dimse_retrieve as retrieve_module

        monkeypatch.setattr(retrieve_module, "fast_get_available", lambda assoc: False)
    yield bool(request.param)


def _fetch(port: int, db: Database) -> Receiver:
    server = DimseServer("evil", "EVILPACS", "127.0.0.1", port, timeout=10)
    study = generate_uid()
    requests = plan_request(study, [], [], None, set())
    receiver = Receiver(db, operation="C-GET")
    try:
        retrieve_get(server, requests, CLASSES, receiver, QueryRoot.STUDY, study, None)
    finally:
        receiver.finish()
    return receiver


def test_hostile_sub_operations_are_refused_and_stay_inside(fast: bool, tmp_path: Path) -> None:
    sandbox = tmp_path / "sandbox"
    good, other, half, mr = generate_uid(), generate_uid(), generate_uid(), generate_uid()
    whole = ct_bytes(half)
    subs = [
        Sub(TRAVERSAL, ct_bytes(generate_uid())),
        Sub(generate_uid(), ct_bytes(other)),  # command UID is not the data set's
        Sub(mr, mr_bytes(mr)),  # command and context say CT, the data set is MR
        Sub(half, whole[: len(whole) // 2]),
        Sub(good, ct_bytes(good)),
    ]
    with Database.open(sandbox / "db") as db:
        seen, stop = hostile_get_scp(subs, db)
        try:
            receiver = _fetch(seen.port, db)
        finally:
            stop()
        assert seen.errors == []
        statuses = [(uid, status) for uid, status, _comment, _indexed in seen.responses]
        assert statuses == [
            (TRAVERSAL, 0xC000),
            (subs[1].sop_uid, 0xA900),
            (subs[2].sop_uid, 0xA900),
            (half, 0xC000),
            (good, 0x0000),
        ]
        assert all(comment for _u, status, comment, _i in seen.responses if status)
        # Success only once safe on disk: the SCP looked at the moment the response came
        assert [(u, i) for u, s, _c, i in seen.responses if s == 0] == [(good, True)]
        report = receiver.report()
        assert list(report.succeeded) == [good]
        assert set(report.failed) == {s.sop_uid for s in subs[:4]}
        assert all(
            "C-GET from" in reason and "EVIL" in reason.upper() for reason in report.failed.values()
        )
        assert db.has_instances([s.sop_uid for s in subs[:4]]) == set()
        assert audit(sandbox, db) == []
        assert not list(tmp_path.rglob("*PWNED*"))
        assert staged(db) == []


def test_pdu_longer_than_announced_aborts_the_fetch(fast: bool, tmp_path: Path) -> None:
    good = generate_uid()
    subs = [Sub(good, ct_bytes(good)), Sub(generate_uid(), b"", huge_pdu=True)]
    with Database.open(tmp_path / "db") as db:
        seen, stop = hostile_get_scp(subs, db)
        started = time.monotonic()
        try:
            expected = ProtocolError if fast else NodeError
            with pytest.raises(expected, match="evil"):
                _fetch(seen.port, db)
        finally:
            stop()
        # aborted on the PDU header: the 1.5 GB were never waited for nor held
        assert time.monotonic() - started < 8
        assert db.has_instances([good]) == {good}
        assert staged(db) == []
