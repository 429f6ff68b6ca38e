"""C-STORE over several associations at once (``associations=N``, ``send --associations``)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomstation.errors import ConfigError
from dicomstation.models import Phase, ProgressEvent
from dicomstation.nodes.dimse import DimseNode
from dicomstation.nodes.dimse_sendruns import split_runs
from tests.dimse.conftest import DcmtkPeer, _require, dcmtk_env, sop_uid, stop, wait_port
from tests.peers import free_port

pytestmark = pytest.mark.dcmtk


@pytest.fixture()
def forking_storescp(tmp_path: Path) -> Iterator[DcmtkPeer]:
    """dcmtk storescp --fork (one process per association), logging each association."""
    _require("storescp")
    port, folder = free_port(), tmp_path / "received"
    folder.mkdir()
    log = (tmp_path / "storescp.log").open("wb")
    process = subprocess.Popen(
        [
            "storescp",
            "--fork",
            "-v",
            "-aet",
            "STORESCP",
            "+xa",
            "+B",
            "-od",
            str(folder),
            str(port),
        ],
        env=dcmtk_env(tmp_path / "bindlocal"),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_port(port, process)
        yield DcmtkPeer("STORESCP", port, folder, process)
    finally:
        stop(process)
        log.close()


def test_parallel_associations_send_everything_once(
    forking_storescp: DcmtkPeer, ct_series: list[Path], tmp_path: Path
) -> None:
    events: list[ProgressEvent] = []
    node = DimseNode(forking_storescp.server(), associations=3)
    report = node.store(ct_series, progress=events.append)
    assert report.ok and sorted(report.succeeded) == sorted(sop_uid(p) for p in ct_series)
    assert report.bytes_transferred == sum(p.stat().st_size for p in ct_series)
    received = {sop_uid(p) for p in forking_storescp.folder.iterdir()}
    assert received == {sop_uid(p) for p in ct_series}
    log = (tmp_path / "storescp.log").read_text(errors="replace")
    assert log.count("Association Release") == 3  # (the port probe is no association)
    progress = [e.done for e in events if e.phase is Phase.PROGRESS]
    assert progress == sorted(progress) and progress[-1] == len(ct_series)
    assert events[-1].phase is Phase.DONE


def test_associations_out_of_range_is_a_config_error(ct_series: list[Path]) -> None:
    from dicomstation.config import DimseServer

    node = DimseNode(DimseServer("x", "X", "127.0.0.1", 9))
    with pytest.raises(ConfigError, match="associations=0"):
        node.store(ct_series, associations=0)


def test_runs_are_consecutive_and_cover_everything() -> None:
    items = list(range(10))
    for count in (1, 3, 4, 10, 25):
        runs = split_runs(items, count)
        assert [i for run in runs for i in run] == items
        assert len(runs) == min(count, 10)
        assert max(map(len, runs)) - min(map(len, runs)) <= 1
    assert split_runs([], 4) == []
