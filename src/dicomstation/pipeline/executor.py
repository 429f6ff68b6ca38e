"""Executors: how tasks (one work item each) are run. In-process threads by default.

An :class:`Executor` receives manifests and a ``report`` callback. It calls
``report(result)`` (on the driver, one call at a time) for every finished task;
``report`` returns a follow-up manifest (a retry of the same item) or None. The
executor stops taking new manifests once ``cancel`` is set and returns when
every task it started has reported. A Dask executor implements the same
protocol with ``client.submit(run_task, manifest)`` and ``as_completed``.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, runtime_checkable

from dicomstation.models import ProgressEvent
from dicomstation.nodes.base import CancelToken
from dicomstation.pipeline.model import StepEvent, TaskManifest, TaskResult
from dicomstation.pipeline.nodepool import NodePool
from dicomstation.pipeline.task import run_task

__all__ = ["EventSink", "Executor", "InProcessExecutor", "ItemProgress", "Report"]

Report = Callable[[TaskResult], TaskManifest | None]
ItemProgress = Callable[[str, ProgressEvent], None]  # (item key, transfer progress)
EventSink = Callable[[StepEvent], None]


@runtime_checkable
class Executor(Protocol):
    """Runs tasks; see the module docstring for the contract.

    An executor may also have ``check_servers(servers)``, called before a run
    records anything in the ledger; it raises ConfigError for servers it must not
    be given (the Dask executor: secrets to a scheduler reached in clear text).
    """

    def run(
        self,
        manifests: Iterable[TaskManifest],
        report: Report,
        *,
        events: EventSink | None = None,
        cancel: CancelToken,
    ) -> None:
        """Run every manifest (and the retries ``report`` returns) until done or cancelled."""
        ...


class InProcessExecutor:
    """Threads in this process, at most ``concurrency`` work items at once.

    Step events from the worker threads are handed to ``events`` on the calling
    thread, so sinks (the ledger, a progress display) need no locking of their own.
    The calling thread waits in short slices, so Ctrl-C reaches it promptly. The
    tasks of one :meth:`run` share one HTTP client per DICOMweb server
    (:class:`~dicomstation.pipeline.nodepool.NodePool`), closed when it returns.
    """

    def __init__(self, concurrency: int = 2, progress: ItemProgress | None = None) -> None:
        self.concurrency = max(1, concurrency)
        self.progress = progress

    def run(
        self,
        manifests: Iterable[TaskManifest],
        report: Report,
        *,
        events: EventSink | None = None,
        cancel: CancelToken,
    ) -> None:
        """Run the manifests; see :class:`Executor`."""
        waiting = iter(manifests)
        state = _Running(set(), [], NodePool())
        sink = state.inbox.put if events is not None else None
        interrupted = False
        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="pipeline") as pool:
                while True:
                    try:
                        if not self._step(pool, state, waiting, report, sink, events, cancel):
                            break
                    except KeyboardInterrupt:  # stop taking work; let running tasks stop
                        cancel.cancel()
                        interrupted = True
        finally:
            state.nodes.close()
        if interrupted:
            raise KeyboardInterrupt

    def _step(
        self,
        pool: ThreadPoolExecutor,
        state: _Running,
        waiting: Iterator[TaskManifest],
        report: Report,
        sink: EventSink | None,
        events: EventSink | None,
        cancel: CancelToken,
    ) -> bool:
        """Start what fits, wait a little, report what finished; False when all is done."""
        while not cancel.cancelled and len(state.futures) < self.concurrency:
            manifest = state.retries.pop(0) if state.retries else next(waiting, None)
            if manifest is None:
                break
            progress = partial(self.progress, manifest.item.key) if self.progress else None
            state.futures.add(pool.submit(run_task, manifest, sink, cancel, progress, state.nodes))
        if not state.futures:
            return False
        finished, state.futures = _wait(state.futures, state.inbox, events)
        for future in finished:
            follow = report(future.result())
            if follow is not None and not cancel.cancelled:
                state.retries.append(follow)
        return True


@dataclass
class _Running:
    futures: set[Future[TaskResult]]
    retries: list[TaskManifest]
    nodes: NodePool
    inbox: queue.Queue[StepEvent] = field(default_factory=queue.Queue)


def _wait(
    running: set[Future[TaskResult]],
    inbox: queue.Queue[StepEvent],
    events: EventSink | None,
) -> tuple[set[Future[TaskResult]], set[Future[TaskResult]]]:
    """Wait up to 0.2 s for a task to finish, delivering step events meanwhile."""
    done, pending = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
    while events is not None:
        try:
            events(inbox.get_nowait())
        except queue.Empty:
            break
    return set(done), set(pending)
