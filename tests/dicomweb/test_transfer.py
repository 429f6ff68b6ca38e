"""Generic transfer helpers: retries, parallel runs, cancellation, tracker events."""

from __future__ import annotations

import threading
import time

import pytest

from dicomstation.errors import CancelledError, ConnectionFailedError, RemoteStatusError
from dicomstation.models import Phase, ProgressEvent
from dicomstation.nodes.base import CancelToken
from dicomstation.nodes.http_errors import is_retryable
from dicomstation.transfer import (
    RetryPolicy,
    SerialWorker,
    TransferTracker,
    run_parallel,
    with_retries,
)

FAST = RetryPolicy(attempts=3, backoff=0.001)


def test_retries_only_retryable_errors() -> None:
    calls = []

    def flaky() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionFailedError("reset", server="s", operation="op")
        return 7

    assert with_retries(flaky, policy=FAST, retryable=is_retryable) == 7 and len(calls) == 3
    calls.clear()

    def bad_request() -> int:
        calls.append(1)
        raise RemoteStatusError("400", server="s", operation="op", status=400)

    with pytest.raises(RemoteStatusError):
        with_retries(bad_request, policy=FAST, retryable=is_retryable)
    assert len(calls) == 1


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(backoff=1.0, max_backoff=5.0, jitter=0.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_run_parallel_uses_threads_and_stops_on_error() -> None:
    running, peak, lock = [0], [0], threading.Lock()
    done: list[int] = []

    def work(item: int) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
            done.append(item)
        if item == 5:
            raise ValueError("boom")

    cancel = CancelToken()
    with pytest.raises(ValueError, match="boom"):
        run_parallel(range(40), work, workers=4, cancel=cancel)
    assert peak[0] == 4 and len(done) < 40 and cancel.cancelled


def test_run_parallel_cancel() -> None:
    cancel = CancelToken()

    def work(item: int) -> None:
        if item == 2:
            cancel.cancel()

    with pytest.raises(CancelledError):
        run_parallel(range(100), work, workers=2, cancel=cancel)


def test_tracker_events_and_report() -> None:
    events: list[ProgressEvent] = []
    tracker = TransferTracker("fetch", events.append, interval=0.0)
    tracker.skip(["a"])
    tracker.start(3)
    tracker.add_bytes(10)
    tracker.succeed(["b"])
    tracker.fail("c", "broken")
    report = tracker.report()
    assert [e.phase for e in events] == [
        Phase.STARTED,
        Phase.SKIPPED,
        Phase.PROGRESS,
        Phase.PROGRESS,
        Phase.FAILED,
        Phase.DONE,
    ]
    assert events[-1].done == 3 and events[-1].bytes_done == 10
    assert report.succeeded == ("b",) and report.skipped == ("a",) and not report.ok


def test_serial_worker_batches_in_order_and_reraises() -> None:
    seen: list[list[int]] = []
    worker: SerialWorker[int] = SerialWorker(seen.append)
    worker.submit(range(5))
    worker.flush()
    worker.submit([5])
    worker.close()
    assert [i for batch in seen for i in batch] == [0, 1, 2, 3, 4, 5]

    def fail(items: list[int]) -> None:
        raise OSError("disk full")

    broken: SerialWorker[int] = SerialWorker(fail)
    broken.submit([1])
    with pytest.raises(OSError, match="disk full"):
        broken.flush()
    with pytest.raises(OSError):
        broken.close()
