"""Retry-After is honoured only up to a cap; a fetched instance's size is capped.

Hostile servers of our own on 127.0.0.1 answer 503 with a huge Retry-After (in
seconds or as an HTTP date), or stream an instance far larger than allowed; the
real CLI and httpx client run against them.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dicomstation.config import ClientLimits, DicomWebServer
from dicomstation.database import Database
from dicomstation.nodes.dicomweb import DicomWebNode
from dicomstation.transfer import RetryPolicy
from tests.security.client_support import (
    HostileServer,
    Reply,
    Seen,
    invoke_cli,
    json_reply,
    settings_text,
    study,
)
from tests.synth import write_ct_series

MB = 1 << 20


class _Busy:
    """Answers 503 with ``retry_after`` ``times`` times, then five studies."""

    def __init__(self, retry_after: str, times: int = 1) -> None:
        self.retry_after, self.times = retry_after, times

    def __call__(self, seen: Seen) -> Reply:
        self.times -= 1
        if self.times >= 0:
            return Reply(503, {"Retry-After": self.retry_after, "Content-Length": "0"})
        return json_reply([study(f"1.2.3.{i}") for i in range(5)])


def _config(tmp_path: Path, url: str, **limits: float) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(settings_text("h", url, **limits))
    return path


@pytest.mark.parametrize(
    "retry_after",
    ["3600", email.utils.formatdate(time.time() + 7200, usegmt=True)],
    ids=["seconds", "http-date"],
)
def test_a_huge_retry_after_fails_at_once(tmp_path: Path, retry_after: str) -> None:
    with HostileServer(_Busy(retry_after, times=10)) as server:
        started = time.monotonic()
        run = invoke_cli(["query", "h"], _config(tmp_path, server.url))
        took = time.monotonic() - started
        requests = len(server.seen)
    assert run.code == 3
    assert "QIDO-RS on h" in run.stderr and "max_retry_after" in run.stderr, run.stderr
    assert "not retried" in run.stderr
    assert requests == 1
    assert took < 20  # no wait at all: a refusal, not 3600 s


def test_a_retry_after_within_the_cap_is_waited(tmp_path: Path) -> None:
    with HostileServer(_Busy("1")) as server:
        run = invoke_cli(["query", "h", "--json"], _config(tmp_path, server.url))
        seen = server.seen
    assert run.code == 0, run.stderr
    assert len(json.loads(run.stdout)) == 5
    assert len(seen) == 2 and seen[1].at - seen[0].at >= 0.95


def test_the_retry_after_cap_is_configurable(tmp_path: Path) -> None:
    with HostileServer(_Busy("3")) as server:
        run = invoke_cli(["query", "h"], _config(tmp_path, server.url, max_retry_after=1.5))
        requests = len(server.seen)
    assert run.code == 3 and "longer than the 1.5 s we wait" in run.stderr, run.stderr
    assert requests == 1


STUDY, SERIES, SOP = "1.2.3.4", "1.2.3.4.5", "1.2.3.4.5.6"
BOUNDARY = "hostile-boundary"


def _multipart(size: int) -> Iterator[bytes]:
    yield f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    block = b"\0" * MB
    for _ in range(size // MB):
        yield block
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def _oversized(seen: Seen) -> Reply:
    """QIDO: one series of one instance; WADO-RS: a 200 MB instance."""
    if "/series?" in seen.path or seen.path.endswith("/series"):
        series = {
            "0020000D": {"vr": "UI", "Value": [STUDY]},
            "0020000E": {"vr": "UI", "Value": [SERIES]},
            "00201209": {"vr": "IS", "Value": [1]},
        }
        return json_reply([series])
    if "/instances" in seen.path:
        return json_reply(
            [
                {
                    "0020000D": {"vr": "UI", "Value": [STUDY]},
                    "0020000E": {"vr": "UI", "Value": [SERIES]},
                    "00080018": {"vr": "UI", "Value": [SOP]},
                }
            ]
        )
    content = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
    return Reply(200, {"Content-Type": content}, _multipart(200 * MB))


def test_an_oversized_instance_is_refused_while_it_streams(tmp_path: Path) -> None:
    config = _config(tmp_path, "")
    with HostileServer(_oversized) as server:
        config.write_text(settings_text("h", server.url, max_instance_bytes=4 * MB))
        run = invoke_cli(["fetch", "h", STUDY, "--json", "--db", str(tmp_path / "db")], config)
        sent = server.sent
    out = run.stdout
    report = json.loads(out[out.index("{") :])
    assert report["succeeded"] == 0
    (reason,) = report["failed"].values()
    assert "WADO-RS on h" in reason and "max_instance_bytes" in reason and "4,194,304" in reason
    assert sent < 100 * MB, sent  # the client hung up; it did not drain 200 MB
    with Database.open(tmp_path / "db") as db:
        assert db.has_instances([SOP]) == set()
    leftovers = [p for p in (tmp_path / "db").rglob("*") if p.is_file() and p.stat().st_size > MB]
    assert not leftovers, leftovers


def _huge_body(status: int) -> Callable[[Seen], Reply]:
    def behaviour(_seen: Seen) -> Reply:
        block = b" " * MB
        return Reply(status, {"Content-Type": "application/dicom+json"}, [b"{", *[block] * 300])

    return behaviour


@pytest.mark.parametrize("status", [200, 500])
def test_a_huge_stow_answer_is_not_read_whole(tmp_path: Path, status: int) -> None:
    files = write_ct_series(tmp_path / "src", 1, size=8)
    limits = ClientLimits(max_qido_bytes=2 * MB)
    with HostileServer(_huge_body(status)) as server:
        config = DicomWebServer("h", server.url, limits=limits)
        node = DicomWebNode.from_config(config)
        node.retry = RetryPolicy(attempts=2, backoff=0.01)
        with node:
            report = node.store(files)
        sent = server.sent
    (reason,) = report.failed.values()
    assert "STOW-RS on h" in reason
    assert ("max_qido_bytes" in reason) if status == 200 else ("HTTP 500" in reason)
    assert sent < 2 * 100 * MB, sent  # two attempts, each hung up early, not 2 x 300 MB
