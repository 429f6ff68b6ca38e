"""C-STORE fault handling against real (in-process) pynetdicom storage SCPs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE, evt
from pynetdicom.presentation import StoragePresentationContexts

from dicomstation.config import DimseServer
from dicomstation.errors import CancelledError
from dicomstation.models import ProgressEvent
from dicomstation.nodes.base import CancelToken
from dicomstation.nodes.dimse import DimseNode
from tests.dimse.conftest import sop_uid
from tests.peers import free_port


@pytest.fixture()
def scp() -> Iterator[Any]:
    """Start a storage SCP with a given C-STORE handler; shut down afterwards."""
    servers: list[Any] = []

    def start(handler: Any) -> int:
        port = free_port()
        ae = AE(ae_title="FAULTY")
        ae.supported_contexts = StoragePresentationContexts
        servers.append(
            ae.start_server(
                ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, handler)]
            )
        )
        return port

    yield start
    for server in servers:
        server.shutdown()


def _node(port: int, timeout: float = 5) -> DimseNode:
    return DimseNode(DimseServer("faulty", "FAULTY", "127.0.0.1", port, timeout=timeout))


def test_failure_status_fails_that_instance_only(scp: Any, ct_series: list[Path]) -> None:
    bad = sop_uid(ct_series[2])

    def handler(event: Any) -> int:
        return 0xA700 if event.request.AffectedSOPInstanceUID == bad else 0x0000

    report = _node(scp(handler)).store(ct_series)
    assert set(report.failed) == {bad}
    assert "0xA700" in report.failed[bad] and "faulty" in report.failed[bad]
    assert len(report.succeeded) == len(ct_series) - 1


def test_warning_status_is_reported(scp: Any, ct_series: list[Path]) -> None:
    report = _node(scp(lambda event: 0xB000)).store(ct_series[:2])
    assert report.ok and len(report.warnings) == 2
    assert all("Coercion" in text for text in report.warnings.values())


def test_stalled_instance_times_out_and_the_rest_continue(scp: Any, ct_series: list[Path]) -> None:
    import threading

    slow = sop_uid(ct_series[1])
    released = threading.Event()

    def handler(event: Any) -> int:
        if event.request.AffectedSOPInstanceUID == slow:
            released.wait(30)  # stall until the client has given up
        return 0x0000

    started = time.monotonic()
    try:
        report = _node(scp(handler), timeout=2).store(ct_series[:4])
    finally:
        released.set()
    assert set(report.failed) == {slow} and "within 2s" in report.failed[slow]
    assert len(report.succeeded) == 3
    assert time.monotonic() - started < 10


def test_cancel_stops_between_instances(scp: Any, ct_series: list[Path]) -> None:
    cancel = CancelToken()

    def progress(event: ProgressEvent) -> None:
        if event.done >= 3:
            cancel.cancel()

    with pytest.raises(CancelledError, match="after 3 of"):
        _node(scp(lambda event: 0x0000)).store(ct_series, progress=progress, cancel=cancel)


def test_stalled_get_is_a_timeout_and_leaves_nothing_half_written(ct_series: list[Path]) -> None:
    import threading

    from pydicom import dcmread

    from dicomstation.database import Database
    from dicomstation.errors import ConnectionFailedError
    from dicomstation.models import Level
    from dicomstation.nodes.dimse_query import QueryRoot, model_uid

    first = dcmread(ct_series[0])
    released = threading.Event()

    def find(event: Any) -> Iterator[tuple[int, Any]]:
        for path in ct_series[:3]:
            found = dcmread(path, stop_before_pixels=True)
            found.QueryRetrieveLevel = "IMAGE"
            yield 0xFF00, found

    def get(event: Any) -> Iterator[Any]:
        yield 3
        yield 0xFF00, dcmread(ct_series[0])
        released.wait(30)  # then stall until the client has given up
        yield 0x0000, None

    port = free_port()
    ae = AE(ae_title="FAULTY")
    ae.add_supported_context(model_uid(QueryRoot.STUDY, "C-FIND", Level.STUDY))
    ae.add_supported_context(model_uid(QueryRoot.STUDY, "C-GET", Level.STUDY))
    for context in StoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, scu_role=True, scp_role=True)
    server = ae.start_server(
        ("127.0.0.1", port),
        block=False,
        evt_handlers=[(evt.EVT_C_FIND, find), (evt.EVT_C_GET, get)],
    )
    try:
        with Database.temporary() as db:
            # 3 s: the series C-FIND before the C-GET must be answered within the timeout
            # even when the machine is loaded (this SCP runs in the test's own process).
            with pytest.raises(ConnectionFailedError, match="C-GET on faulty"):
                _node(port, timeout=3).retrieve(str(first.StudyInstanceUID), into=db)
            released.set()
            assert db.has_instances([sop_uid(ct_series[0])]) == {sop_uid(ct_series[0])}
            assert not [p for p in (db.root / "incoming").rglob("*") if p.is_file()]
    finally:
        released.set()
        server.shutdown()
