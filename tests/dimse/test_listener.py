"""StorageListener edge cases with real associations: echo, aborts mid-instance."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pynetdicom.dsutils import split_dataset

from dicomstation.config import DimseServer
from dicomstation.database import Database
from dicomstation.nodes.dimse import DimseNode
from dicomstation.nodes.dimse_assoc import open_association
from dicomstation.nodes.dimse_fastsend import command_set
from dicomstation.nodes.dimse_pdu import frame_data, own_socket, send_message
from dicomstation.nodes.dimse_store import _contexts_for, scan_outgoing
from dicomstation.nodes.listener import StorageListener
from tests.dimse.conftest import sop_uid


@pytest.mark.parametrize("fast", [True, False])
def test_echo_and_store_to_listener(db: Database, ct_series: list[Path], fast: bool) -> None:
    with StorageListener(db, ae_title="LSN", port=0, fast=fast) as listener:
        node = DimseNode(DimseServer("me", "LSN", "127.0.0.1", listener.port, timeout=5))
        assert node.echo() > 0
        report = node.store(ct_series[:3])
        assert report.ok and len(report.succeeded) == 3
        listener.wait_indexed()
        assert db.has_instances(report.succeeded) == set(report.succeeded)
        again = node.store(ct_series[:3])  # the listener answers Success, stores nothing
        assert again.ok
    assert len(listener.report.skipped) == 3


def test_abort_mid_instance_leaves_nothing(db: Database, ct_series: list[Path]) -> None:
    items, _ = scan_outgoing(ct_series[:2])
    with StorageListener(db, ae_title="LSN", port=0) as listener:
        server = DimseServer("me", "LSN", "127.0.0.1", listener.port, timeout=5)
        with open_association(server, _contexts_for(items), "C-STORE") as assoc:
            context = next(
                int(cx.context_id)
                for cx in assoc.accepted_contexts
                if str(cx.transfer_syntax[0]) == items[0].transfer_syntax
            )
            with own_socket(assoc, 5) as sock:
                _meta, offset = split_dataset(items[0].path)
                half = items[0].path.read_bytes()[offset:][:3000]
                send_message(
                    sock, context, command_set(items[0].sop_class, items[0].sop_uid, 1), None, 16384
                )
                sock.sendall(frame_data(context, half, 1000, last=False))
            assoc.abort()
        time.sleep(0.5)
        listener.wait_indexed()
        # the listener still works after the broken association
        node = DimseNode(server)
        assert node.store([ct_series[1]]).ok
    assert db.has_instances([sop_uid(ct_series[0])]) == set()
    assert db.has_instances([sop_uid(ct_series[1])]) == {sop_uid(ct_series[1])}
    assert sop_uid(ct_series[0]) in listener.report.failed
    assert not [p for p in (db.root / "incoming").rglob("*") if p.is_file()]
