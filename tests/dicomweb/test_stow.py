"""STOW-RS against the real Orthanc: batches, per-instance results, retries, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomstation.errors import AuthenticationError
from dicomstation.models import Phase, ProgressEvent
from dicomstation.nodes.dicomweb import DicomWebNode
from dicomstation.nodes.stow import StowSender, _reason
from tests.dicomweb.conftest import make_node
from tests.dicomweb.faultproxy import FaultProxy
from tests.peers import OrthancServer

pytestmark = pytest.mark.orthanc


def _all(synth: dict[str, list[Path]]) -> list[Path]:
    return synth["a"] + synth["b"]


def test_store_in_concurrent_batches(
    clean_orthanc: OrthancServer, orthanc: OrthancServer, synth_study: dict[str, list[Path]]
) -> None:
    events: list[ProgressEvent] = []
    with (
        FaultProxy(orthanc.dicomweb_url) as proxy,
        make_node(orthanc, proxy.url, stow_batch_files=4) as node,
    ):
        report = node.store(_all(synth_study), progress=events.append)
        posts = [r for r in proxy.faults.requests if r.startswith("POST")]
    assert report.ok and len(report.succeeded) == 17
    assert len(posts) == 5  # 17 files in batches of 4
    assert report.bytes_transferred == sum(p.stat().st_size for p in _all(synth_study))
    assert events[-1].phase is Phase.DONE and events[-1].done == 17
    assert clean_orthanc.count_instances() == 17


def test_store_retries_with_a_fresh_body(
    clean_orthanc: OrthancServer, orthanc: OrthancServer, synth_study: dict[str, list[Path]]
) -> None:
    with FaultProxy(orthanc.dicomweb_url) as proxy, make_node(orthanc, proxy.url) as node:
        proxy.faults.match = "/studies"
        proxy.faults.statuses = [503, 502]
        report = node.store(synth_study["b"])
    assert report.ok and len(report.succeeded) == 5
    assert clean_orthanc.count_instances() == 5


def test_bad_files_are_reported_per_instance(
    clean_orthanc: OrthancServer,
    node: DicomWebNode,
    synth_study: dict[str, list[Path]],
    tmp_path: Path,
) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all" * 10)
    truncated = tmp_path / "trunc.dcm"
    truncated.write_bytes(synth_study["b"][0].read_bytes()[:3000])
    missing = tmp_path / "missing.dcm"
    report = node.store([*synth_study["b"][1:], junk, truncated, missing])
    assert len(report.succeeded) == 4
    assert str(junk) in report.failed and str(missing) in report.failed
    assert "not a DICOM Part 10 file" in report.failed[str(junk)]
    failed_uid = next(k for k in report.failed if k not in (str(junk), str(missing)))
    assert "orthanc" in report.failed[failed_uid]
    assert clean_orthanc.count_instances() == 4


def test_server_error_after_retries_fails_the_batch(
    clean_orthanc: OrthancServer, orthanc: OrthancServer, synth_study: dict[str, list[Path]]
) -> None:
    with FaultProxy(orthanc.dicomweb_url) as proxy, make_node(orthanc, proxy.url) as node:
        proxy.faults.match = "/studies"
        proxy.faults.statuses = [500] * 10
        report = node.store(synth_study["b"][:2])
    assert len(report.failed) == 2
    assert all("HTTP 500" in r and "STOW-RS on orthanc" in r for r in report.failed.values())


def test_dropped_connection_is_retried(
    clean_orthanc: OrthancServer, orthanc: OrthancServer, synth_study: dict[str, list[Path]]
) -> None:
    with FaultProxy(orthanc.dicomweb_url) as proxy, make_node(orthanc, proxy.url) as node:
        proxy.faults.match = "/studies"
        proxy.faults.truncate_at, proxy.faults.truncate_times = 10, 1
        report = node.store(synth_study["b"])
    assert report.ok and clean_orthanc.count_instances() == 5


def test_wrong_password(clean_orthanc: OrthancServer, synth_study: dict[str, list[Path]]) -> None:
    from dicomstation.config import Credentials, DicomWebServer, Secret

    bad = DicomWebServer(
        "orthanc",
        clean_orthanc.dicomweb_url,
        Credentials(username="tester", password=Secret("nope")),
    )
    with DicomWebNode.from_config(bad) as node, pytest.raises(AuthenticationError):
        node.store(synth_study["b"])


def test_response_parsing_failed_and_warning_sequences(tmp_path: Path) -> None:
    import httpx

    from dicomstation.nodes.stow import Outgoing
    from dicomstation.transfer import RetryPolicy, TransferTracker

    def item(uid: str, tag: str | None = None, code: int = 0) -> dict[str, object]:
        out: dict[str, object] = {"00081155": {"vr": "UI", "Value": [uid]}}
        if tag:
            out[tag] = {"vr": "US", "Value": [code]}
        return out

    body = {
        "00081199": {"vr": "SQ", "Value": [item("1.1"), item("1.2", "00081196", 0xB000)]},
        "00081198": {"vr": "SQ", "Value": [item("1.3", "00081197", 0xA900)]},
    }
    tracker = TransferTracker("send")
    sender = StowSender(httpx.Client(), "http://x", "pacs", tracker, policy=RetryPolicy())
    batch = [Outgoing(tmp_path / f"{i}", f"1.{i}", 1) for i in (1, 2, 3, 4)]
    sender._record(batch, httpx.Response(202, json=body, headers={"Warning": "299 x"}))
    report = tracker.report()
    assert report.succeeded == ("1.1", "1.2")
    assert "data set does not match SOP class" in report.failed["1.3"]
    assert "did not accept it (HTTP 202" in report.failed["1.4"]
    assert "coercion" in report.warnings["1.2"]


def test_failure_reason_codes() -> None:
    item = {"00081197": {"vr": "US", "Value": [0xC122]}}
    assert _reason(item, "00081197") == "transfer syntax not supported (0xC122)"
    assert _reason({}, "00081197") == ""
    assert StowSender.__doc__
