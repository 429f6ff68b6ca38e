"""QIDO-RS answers are bounded: bytes, results and requests, whatever the server sends.

A hostile server of our own on 127.0.0.1 ignores ``limit`` and ``offset``: it
streams a 400 MB answer (generated lazily), one endless JSON object, or keeps
sending new UIDs on every page. The real CLI runs in a child process whose peak
RSS is measured.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.security.client_support import (
    HostileServer,
    Reply,
    Seen,
    huge_study_array,
    invoke_cli,
    json_reply,
    run_cli,
    settings_text,
    study,
)

MB = 1 << 20
HUGE = 400 * MB


def _big_answer(_seen: Seen) -> Reply:
    # ignores limit/offset, sends no Content-Length: the client must stop reading itself
    return Reply(200, {"Content-Type": "application/dicom+json"}, huge_study_array(HUGE))


def _small_answer(_seen: Seen) -> Reply:
    return json_reply([study(f"1.2.3.{i}") for i in range(5)])


def _config(tmp_path: Path, url: str, **limits: int) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(settings_text("h", url, **limits))
    return path


@pytest.fixture(scope="module")
def baseline_rss(tmp_path_factory: pytest.TempPathFactory) -> float:
    """Peak RSS (MiB) of the same CLI query against a five-result answer."""
    folder = tmp_path_factory.mktemp("baseline")
    with HostileServer(_small_answer) as server:
        run = run_cli(["query", "h", "--limit", "5", "--json"], _config(folder, server.url))
    assert run.code == 0, run.stderr
    assert len(json.loads(run.stdout)) == 5
    return run.rss_mb


def test_huge_answer_with_limit_reads_only_what_it_needs(
    tmp_path: Path, baseline_rss: float
) -> None:
    with HostileServer(_big_answer) as server:
        started = time.monotonic()
        run = run_cli(["query", "h", "--limit", "5", "--json"], _config(tmp_path, server.url))
        took = time.monotonic() - started
        sent = server.sent
    assert run.code == 0, run.stderr
    rows = json.loads(run.stdout)
    assert [r["0020000D"]["Value"][0] for r in rows] == [
        f"1.2.826.0.1.3680043.10.543.{i}" for i in range(1, 6)
    ]
    assert run.rss_mb < baseline_rss + 60, (run.rss_mb, baseline_rss)
    assert sent < 64 * MB, f"the client kept reading: {sent} bytes"  # socket buffers only
    assert took < 60


def test_huge_answer_without_limit_is_refused_at_the_byte_cap(
    tmp_path: Path, baseline_rss: float
) -> None:
    config = _config(tmp_path, "", max_qido_bytes=8 * MB)
    with HostileServer(_big_answer) as server:
        config.write_text(settings_text("h", server.url, max_qido_bytes=8 * MB))
        run = run_cli(["query", "h", "--json"], config)
    assert run.code == 3
    message = run.stderr.strip()
    assert "\n" not in message and "Traceback" not in message, message
    assert "QIDO-RS on h" in message and "max_qido_bytes" in message and "8,388,608" in message
    assert run.rss_mb < baseline_rss + 150, (run.rss_mb, baseline_rss)


def test_one_endless_json_object_is_refused_in_linear_time(tmp_path: Path) -> None:
    def endless(_seen: Seen) -> Reply:
        head = (
            b'[{"0020000D": {"vr": "UI", "Value": ["1.2.3"]}, "00081030": {"vr": "LO", "Value": ["'
        )
        return Reply(200, {"Content-Type": "application/dicom+json"}, [head, *[b"x" * MB] * 400])

    with HostileServer(endless) as server:
        started = time.monotonic()
        run = run_cli(["query", "h"], _config(tmp_path, server.url, max_qido_bytes=32 * MB))
        took = time.monotonic() - started
    assert run.code == 3 and "max_qido_bytes" in run.stderr, run.stderr
    assert took < 30


class _Forever:
    """A server that ignores offset and answers each request with ``page`` new studies."""

    def __init__(self, page: int = 200, new_per_page: int | None = None) -> None:
        self.page, self.new = page, page if new_per_page is None else new_per_page
        self.requests = 0

    def __call__(self, _seen: Seen) -> Reply:
        self.requests += 1
        fresh = [study(f"1.2.3.{self.requests}.{i}") for i in range(self.new)]
        repeats = [study("1.2.3.0.0")] * (self.page - self.new)
        return json_reply(fresh + repeats)


def test_endless_new_uids_stop_at_the_result_cap(tmp_path: Path) -> None:
    behaviour = _Forever()
    with HostileServer(behaviour) as server:
        run = invoke_cli(["query", "h"], _config(tmp_path, server.url, max_qido_results=1000))
        requests = len(server.seen)
    assert run.code == 3
    assert "QIDO-RS on h" in run.stderr and "max_qido_results" in run.stderr, run.stderr
    assert requests <= 6, requests  # 1000 results / 200 per page, then the refusal


def test_endless_new_uids_stop_on_the_query_limit(tmp_path: Path) -> None:
    with HostileServer(_Forever()) as server:
        run = invoke_cli(["query", "h", "--limit", "300", "--json"], _config(tmp_path, server.url))
        requests = len(server.seen)
    assert run.code == 0, run.stderr
    assert len(json.loads(run.stdout)) == 300
    assert requests == 2
    assert [
        dict(p.split("=") for p in s.path.split("?")[1].split("&"))["limit"] for s in server.seen
    ] == ["200", "100"]


def test_a_trickle_of_new_uids_stops_at_the_request_cap(tmp_path: Path) -> None:
    behaviour = _Forever(page=200, new_per_page=1)
    with HostileServer(behaviour) as server:
        run = invoke_cli(["query", "h"], _config(tmp_path, server.url, max_qido_requests=7))
        requests = len(server.seen)
    assert run.code == 3
    assert "max_qido_requests" in run.stderr, run.stderr
    assert requests == 7
