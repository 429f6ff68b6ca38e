"""The Dask distributed executor: one task per work item on a Dask cluster.

``DaskExecutor("local:N")`` starts a :class:`distributed.LocalCluster` of N
worker processes (one thread each, bound to 127.0.0.1); ``DaskExecutor(
"tcp://HOST:PORT")`` uses a running scheduler (a SLURM or Kubernetes cluster).
Each task is :func:`~dicomstation.pipeline.task.run_task` on one small
:class:`TaskManifest`; it hands back a small :class:`TaskResult`. No pixels
cross a process boundary, and the ledger stays with the driver, which calls
``report`` on its own thread for each finished task.

A worker that dies is replaced by Dask (its nanny restarts it) and the task is
run again elsewhere; after the scheduler's ``allowed-failures`` deaths
(``attempts - 1`` on a cluster we start) the item fails with a message naming
it, and the run goes on. Retries of retryable errors (429/5xx) wait on the
driver until their back-off is over, not on a worker.

Only ``dashboard_link`` and ``workers`` are read by other code (the web UI).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import pickle
import queue
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dicomstation.errors import ConfigError, ConnectionFailedError
from dicomstation.nodes.base import CancelToken
from dicomstation.pipeline.cluster_info import forget_cluster, write_cluster
from dicomstation.pipeline.model import StepEvent, StepRecord, StepState, TaskManifest, TaskResult
from dicomstation.pipeline.task import run_task

# distributed is only partly typed: its client and futures are handled as Any here.
Client = Any
Future = Any

__all__ = ["DaskExecutor", "executor_for"]

Report = Callable[[TaskResult], TaskManifest | None]
EventSink = Callable[[StepEvent], None]

#: How long connecting to a scheduler may take before the run fails.
CONNECT_TIMEOUT = 20.0


def executor_for(
    cluster: str | None, scheduler: str | None, announce: Path | None = None
) -> DaskExecutor | None:
    """The executor for the CLI's ``--cluster local:N`` / ``--scheduler ADDRESS`` (None: neither).

    ``announce``: where to write the running cluster's dashboard link (see
    :mod:`~dicomstation.pipeline.cluster_info`).

    Raises
    ------
    ConfigError
        When both are given, or either is malformed.
    """
    if cluster and scheduler:
        raise ConfigError("give --cluster or --scheduler, not both")
    if cluster:
        if not cluster.startswith("local:"):
            raise ConfigError(f"--cluster takes local:N (N worker processes), not {cluster!r}")
        return DaskExecutor(cluster, announce=announce)
    if scheduler:
        return DaskExecutor(scheduler, announce=announce)
    return None


def _parse(target: str) -> tuple[int, str]:
    """(local worker count, 0 for a scheduler address; scheduler address or '')."""
    if target.startswith("local:"):
        count = target.removeprefix("local:")
        if not count.isdigit() or not 1 <= int(count) <= 256:
            raise ConfigError(f"cluster {target!r}: local:N needs N from 1 to 256")
        return int(count), ""
    scheme, _, rest = target.partition("://")
    if scheme not in ("tcp", "tls", "ucx", "inproc") or not rest:
        raise ConfigError(
            f"scheduler {target!r} is not a Dask scheduler address (tcp://HOST:PORT or tls://...)"
        )
    return 0, target


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError(
            "the Dask executor needs the 'distributed' package: pip install 'dicomstation[dask]'"
        ) from None
    return distributed


def _remote_task(manifest: TaskManifest, topic: str) -> TaskResult:
    """What a worker runs: :func:`run_task`, telling the driver when each step starts.

    The result is also sent at once as an event: a worker killed right after (by
    the next item) would otherwise lose a finished result still in its memory.
    """
    from distributed import get_worker

    worker = get_worker()
    where = {"key": manifest.item.key, "attempt": manifest.attempt}

    def sink(event: StepEvent) -> None:
        if event.state is StepState.RUNNING:
            worker.log_event(topic, {**where, "step": event.step})

    result = run_task(manifest, sink)
    worker.log_event(topic, {**where, "result": pickle.dumps(result)})
    return result


class DaskExecutor:
    """Run work items as Dask tasks (see the module docstring).

    Parameters
    ----------
    target : str
        ``local:N`` (start a LocalCluster of N worker processes) or a scheduler
        address such as ``tcp://10.0.0.5:8786``.
    attempts : int or None
        Runs of one item allowed to die with their worker before it fails (on a
        cluster we start); default: the pipeline's ``run.attempts``.
    dashboard : bool
        Serve the Dask dashboard (a free port on 127.0.0.1) on a cluster we start.
    prefetch : int
        Items queued per worker beyond those running (0: a worker that dies takes no
        queued neighbour with it, which Dask would count as a death of that item too).
    memory_limit : str
        Per-worker memory limit of a cluster we start (Dask's nanny restarts a
        worker above it), e.g. ``"2GiB"``; ``"auto"`` shares the machine's memory.
    announce : Path or None
        While the cluster is up, its dashboard link is written there (for the web UI).

    Use it as a context manager to keep one cluster for several runs.
    """

    def __init__(
        self,
        target: str = "local:2",
        *,
        attempts: int | None = None,
        dashboard: bool = True,
        prefetch: int = 0,
        memory_limit: str = "auto",
        announce: Path | None = None,
    ) -> None:
        self.workers_wanted, self.address = _parse(target)
        self.target = target
        self.attempts = attempts
        self.dashboard = dashboard
        self.prefetch = max(0, prefetch)
        self.memory_limit = memory_limit
        self.announce = announce
        self._client: Client | None = None
        self._cluster: Any = None

    def __repr__(self) -> str:
        return f"DaskExecutor({self.target!r})"

    # -- cluster lifetime ------------------------------------------------------------
    def start(self, attempts: int | None = None) -> Client:
        """Start (or connect to) the cluster; idempotent. Returns the Dask client."""
        if self._client is not None:
            return self._client
        distributed = _import_distributed()
        if self.workers_wanted:
            allowed = max(0, (self.attempts or attempts or 3) - 1)
            self._cluster = self._local_cluster(distributed, allowed)
            self._client = distributed.Client(self._cluster)
        else:
            try:
                self._client = distributed.Client(self.address, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                raise ConnectionFailedError(
                    f"no answer within {CONNECT_TIMEOUT:.0f} s ({exc})",
                    server=self.address,
                    operation="Dask connect",
                ) from None
        if self.announce is not None:
            with contextlib.suppress(OSError):
                write_cluster(
                    self.announce, self.target, self._client.scheduler.address, self.dashboard_link
                )
        return self._client

    def _local_cluster(self, distributed: Any, allowed_failures: int) -> Any:
        """A LocalCluster on loopback; each worker holds only the item it runs.

        ``worker-saturation`` 1.0 (set for the scheduler's creation only) keeps
        other items queued at the scheduler, so a worker killed by one item does
        not count as a death of a neighbour that merely waited on it.
        """
        import dask

        with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
            return distributed.LocalCluster(
                n_workers=self.workers_wanted,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",  # its HTTP server runs anyway: a free port
                memory_limit=self.memory_limit,
                scheduler_kwargs={
                    "allowed_failures": allowed_failures,
                    "dashboard": self.dashboard,
                },
            )

    def close(self) -> None:
        """Disconnect, and stop a cluster we started."""
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        if self.announce is not None:
            forget_cluster(self.announce)
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    def __enter__(self) -> DaskExecutor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dashboard_link(self) -> str:
        """The Dask dashboard's URL ('' when not running or not served)."""
        if self._client is None or (self.workers_wanted and not self.dashboard):
            return ""
        with contextlib.suppress(Exception):
            return str(self._client.dashboard_link or "")
        return ""

    @property
    def workers(self) -> int:
        """Workers connected now (0 when not running)."""
        return len(self._client.nthreads()) if self._client is not None else 0

    @contextlib.contextmanager
    def _session(self, attempts: int | None) -> Iterator[Client]:
        if self._client is not None:
            yield self._client
            return
        try:
            yield self.start(attempts)
        finally:
            self.close()

    # -- running ---------------------------------------------------------------------
    def run(
        self,
        manifests: Iterable[TaskManifest],
        report: Report,
        *,
        events: EventSink | None = None,
        cancel: CancelToken,
    ) -> None:
        """Run the manifests on the cluster; see :class:`~dicomstation.pipeline.Executor`."""
        waiting = iter(manifests)
        first = next(waiting, None)
        if first is None:
            return
        attempts = _pipeline_attempts(first)
        with self._session(attempts) as client:
            run = _DaskRun(client, report, events, cancel, self.prefetch)
            run.go(itertools.chain([first], waiting))


def _pipeline_attempts(manifest: TaskManifest) -> int | None:
    import json

    value = json.loads(manifest.pipeline).get("run", {}).get("attempts")
    return int(value) if isinstance(value, int) else None


@dataclass
class _DaskRun:
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
    import json

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
    import json

    steps = [s["name"] for s in json.loads(manifest.pipeline)["steps"]]
    step = next((s for s in steps if s not in manifest.done_steps), steps[0])
    text = f"{manifest.item.describe()}, step {step}: {why}".replace("\n", " ")[:2000]
    return TaskResult(manifest.item.key, (StepRecord(step, StepState.FAILED, error=text),))
