"""The driver side of a Dask run: futures, retries, events; and what a worker runs.

Split from :mod:`dicomstation.pipeline.dask_executor` (the public executor).
:func:`_remote_task` runs on the workers; :class:`DaskRun` on the driver, which
calls ``report`` for each finished task on its own thread.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import pickle
import queue
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dicomstation.nodes.base import CancelToken
from dicomstation.pipeline.model import StepEvent, StepRecord, StepState, TaskManifest, TaskResult
from dicomstation.pipeline.task import run_task

__all__ = ["DaskRun"]

# distributed is only partly typed: its client and futures are handled as Any here.
Client = Any
Future = Any
Report = Callable[[TaskResult], TaskManifest | None]
EventSink = Callable[[StepEvent], None]


def _remote_task(manifest: TaskManifest, topic: str) -> TaskResult:
    """What a worker runs: :func:`run_task`, telling the driver when each step starts.

    The result is also sent at once as an event: a worker killed right after (by
    the next item) would otherwise lose a finished result still in its memory.
    """
    from distributed import get_worker

    from dicomstation.pipeline.nodepool import worker_pool

    worker = get_worker()
    where = {"key": manifest.item.key, "attempt": manifest.attempt}

    def sink(event: StepEvent) -> None:
        if event.state is StepState.RUNNING:
            worker.log_event(topic, {**where, "step": event.step})

    result = run_task(manifest, sink, pool=worker_pool(worker))
    worker.log_event(topic, {**where, "result": pickle.dumps(result)})
    return result


@dataclass
class DaskRun:
    """One run's futures, retries and inbox (done futures and step events)."""

    client: Client
    report: Report
    events: EventSink | None
    cancel: CancelToken
    prefetch: int
    topic: str = field(default_factory=lambda: f"dicomstation-{uuid.uuid4().hex}")
    inflight: dict[Future, TaskManifest] = field(default_factory=dict)
    retries: list[tuple[float, int, TaskManifest]] = field(default_factory=list)
    inbox: queue.Queue[tuple[str, Any]] = field(default_factory=queue.Queue)
    reported: set[tuple[str, int]] = field(default_factory=set)
    capacity: int = 1
    exhausted: bool = False
    checked: float = 0.0
    counter: Iterator[int] = field(default_factory=itertools.count)

    def go(self, waiting: Iterator[TaskManifest]) -> None:
        self.client.subscribe_topic(self.topic, lambda event: self.inbox.put(("event", event)))
        interrupted = False
        try:
            while True:
                try:
                    if not self._step(waiting):
                        break
                except KeyboardInterrupt:
                    if interrupted or self.cancel.cancelled:  # second Ctrl-C: stop now
                        self._abandon()
                        raise
                    self.cancel.cancel()  # first: take no new work, let running items finish
                    interrupted = True
        finally:
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic(self.topic)
        if interrupted:
            raise KeyboardInterrupt

    def _step(self, waiting: Iterator[TaskManifest]) -> bool:
        """Submit what fits, wait a little, report what finished; False when all is done."""
        self._submit(waiting)
        if not self.inflight and (self.cancel.cancelled or (self.exhausted and not self.retries)):
            self._drop_retries()
            return False
        try:
            kind, value = self.inbox.get(timeout=0.2)
        except queue.Empty:
            return True
        if kind == "done":
            self._finished(value)
        else:
            self._event(value)
        return True

    def _submit(self, waiting: Iterator[TaskManifest]) -> None:
        """Submit up to capacity, due retries first."""
        self._refresh_capacity()
        while not self.cancel.cancelled and len(self.inflight) < self.capacity:
            manifest = self._due_retry()
            if manifest is None and not self.exhausted:
                manifest = next(waiting, None)
                self.exhausted = manifest is None
            if manifest is None:
                break
            future = self.client.submit(_remote_task, manifest, self.topic, pure=False)
            self.inflight[future] = manifest
            future.add_done_callback(lambda f: self.inbox.put(("done", f)))

    def _refresh_capacity(self) -> None:
        now = time.monotonic()
        if now - self.checked < 2.0:
            return
        self.checked = now
        threads = self.client.nthreads()
        self.capacity = max(1, sum(threads.values()) + self.prefetch * len(threads))

    def _due_retry(self) -> TaskManifest | None:
        if self.retries and self.retries[0][0] <= time.time():
            return heapq.heappop(self.retries)[2]
        return None

    def _drop_retries(self) -> None:
        """Cancelled with retries still waiting: they go back to pending."""
        while self.retries:
            manifest = heapq.heappop(self.retries)[2]
            self.report(_stopped(manifest))

    def _finished(self, future: Future, result: TaskResult | None = None) -> None:
        manifest = self.inflight.pop(future, None)
        if manifest is None:  # reported already (its result came as an event)
            return
        result = result or _result_of(future, manifest)
        future.release()
        self.reported.add((manifest.item.key, manifest.attempt))
        follow = self.report(result)
        if follow is None:
            return
        if self.cancel.cancelled:
            self.report(_stopped(follow))
            return
        heapq.heappush(self.retries, (follow.not_before, next(self.counter), follow))

    def _event(self, event: tuple[float, Any]) -> None:
        message = event[1]
        if not isinstance(message, dict):
            return
        key, attempt = str(message.get("key", "")), int(message.get("attempt", 0))
        if (key, attempt) in self.reported:  # a late event of a task already reported
            return
        if "result" in message:
            self._result_event(key, attempt, message["result"])
        elif self.events is not None:
            self.events(StepEvent(key, str(message.get("step", "")), StepState.RUNNING))

    def _result_event(self, key: str, attempt: int, data: Any) -> None:
        future = next(
            (f for f, m in self.inflight.items() if (m.item.key, m.attempt) == (key, attempt)),
            None,
        )
        if future is None or not isinstance(data, bytes):
            return
        result = pickle.loads(data)  # from our own task, through the scheduler (as Dask's results)
        if isinstance(result, TaskResult):
            self._finished(future, result)

    def _abandon(self) -> None:
        """Second Ctrl-C: cancel what is still running; those items go back to pending."""
        futures = list(self.inflight)
        with contextlib.suppress(Exception):
            self.client.cancel(futures)
        for future in futures:
            manifest = self.inflight.pop(future)
            self.report(_stopped(manifest))
        self._drop_retries()


def _stopped(manifest: TaskManifest) -> TaskResult:
    steps = [s["name"] for s in json.loads(manifest.pipeline)["steps"]]
    pending = next((s for s in steps if s not in manifest.done_steps), steps[0])
    return TaskResult(manifest.item.key, (StepRecord(pending, StepState.PENDING),))


def _result_of(future: Future, manifest: TaskManifest) -> TaskResult:
    """The task's result, or a FAILED result naming the item when Dask gave up on it."""
    status = future.status
    if status == "finished":
        try:
            result = future.result()
        except Exception as exc:  # lost between worker and driver
            return _failed(manifest, f"result lost ({type(exc).__name__}: {exc})")
        if isinstance(result, TaskResult):
            return result
        return _failed(manifest, f"worker returned {type(result).__name__}, not a TaskResult")
    if status != "error":  # cancelled, or lost with the scheduler: a rerun resumes it
        return _stopped(manifest)
    error = future.exception()
    if type(error).__name__ == "KilledWorker":
        why = f"its worker process died each time it ran it ({error})"
    else:
        why = f"Dask task error: {type(error).__name__}: {error}"
    return _failed(manifest, why)


def _failed(manifest: TaskManifest, why: str) -> TaskResult:
    steps = [s["name"] for s in json.loads(manifest.pipeline)["steps"]]
    step = next((s for s in steps if s not in manifest.done_steps), steps[0])
    text = f"{manifest.item.describe()}, step {step}: {why}".replace("\n", " ")[:2000]
    return TaskResult(manifest.item.key, (StepRecord(step, StepState.FAILED, error=text),))
