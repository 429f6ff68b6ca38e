"""Small instances written and indexed by the receiving thread: indexed before it waits.

A part that arrives whole in one read is written by the receiving thread and
indexed with the others of its read before the next read from the network
(nodes/staging.py InlineBatch). So when the server stalls mid-series, every
instance that arrived whole is already in the database -- complete, readable --
while the one cut by the stall is nowhere in it; and the series then resumes.
"""

from __future__ import annotations

import threading

import pydicom
import pytest

from dicomstation.database import Database
from dicomstation.errors import NodeError
from dicomstation.models import Phase, ProgressEvent
from dicomstation.transfer import RetryPolicy
from tests.dicomweb.conftest import SERIES_A, STUDY, make_node
from tests.dicomweb.faultproxy import FaultProxy
from tests.peers import OrthancServer

pytestmark = pytest.mark.orthanc

UIDS = [f"{SERIES_A}.{i}" for i in range(1, 13)]  # 12 slices of 64x64, ~8.5 kB each


def test_instances_that_arrived_whole_are_indexed_while_the_server_stalls(
    loaded_orthanc: OrthancServer, orthanc: OrthancServer, db: Database
) -> None:
    indexed = threading.Event()

    def progress(event: ProgressEvent) -> None:
        if event.phase is Phase.PROGRESS and event.done > 0:
            indexed.set()

    outcome: list[object] = []
    with FaultProxy(orthanc.dicomweb_url) as proxy:
        proxy.faults.match, proxy.faults.accept = f"/series/{SERIES_A}", "multipart"
        proxy.faults.hang_after = 40000  # ~4.5 instances, then the server stalls
        node = make_node(orthanc, proxy.url, retry=RetryPolicy(attempts=1))

        def fetch() -> None:
            try:
                outcome.append(node.retrieve(STUDY, [SERIES_A], into=db, progress=progress))
            except NodeError as exc:  # pragma: no cover - reported by the assertion below
                outcome.append(exc)

        worker = threading.Thread(target=fetch)
        worker.start()
        try:
            assert indexed.wait(30), "nothing was indexed while the server stalled"
            kept = db.has_instances(UIDS)  # the stream is still stalled here
            assert 1 <= len(kept) <= 5, kept
            for uid in kept:
                assert len(pydicom.dcmread(db.instance_path(uid)).PixelData) == 64 * 64 * 2
        finally:
            proxy.released.set()  # the proxy closes the stalled answer: a truncated series
            worker.join(60)
            node.close()
    assert not worker.is_alive()
    report = outcome[0]
    assert not getattr(report, "ok", True) and db.has_instances(UIDS) == kept
    with make_node(orthanc) as direct:
        again = direct.retrieve(STUDY, [SERIES_A], into=db)
    assert again.ok and len(again.skipped) == len(kept) and len(again.succeeded) == 12 - len(kept)
