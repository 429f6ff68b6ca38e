"""The driver: enumerate the source, keep the ledger, hand manifests to an executor.

:func:`run_pipeline` (also :meth:`Pipeline.run`) is the one way a pipeline
runs, for ``dicomstation run``, the single CLI commands and the web UI. The
ledger lives with the driver; executors and tasks only see manifests and
return results. A rerun of the same pipeline resumes its job: done items are
passed over, failed ones retried, items a killed driver left running start again.
An item a step's selection takes nothing from is ``skipped`` with the reason: it
is not a failure, and a rerun leaves it alone (``jobs retry`` takes it again).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from dicomstation.config import LocalNodeConfig, ServerConfig
from dicomstation.database import Database
from dicomstation.nodes.base import CancelToken
from dicomstation.pipeline.driver_lock import driving
from dicomstation.pipeline.executor import Executor, InProcessExecutor, ItemProgress
from dicomstation.pipeline.ledger import LEDGER_NAME, ItemPlan, Ledger
from dicomstation.pipeline.model import StepEvent, StepState, TaskManifest, TaskResult, WorkItem
from dicomstation.pipeline.step import StepContext

if TYPE_CHECKING:
    from dicomstation.pipeline.definition import Pipeline

__all__ = ["LEDGER_NAME", "RunOptions", "RunReport", "RunStatus", "list_items", "run_pipeline"]

# LEDGER_NAME: defined in ledger.py (listing jobs imports the ledger only), exported here too.


@dataclass(frozen=True)
class RunStatus:
    """A snapshot of a run, for progress displays (CLI, web UI)."""

    job_id: str
    total: int
    done: int = 0
    failed: int = 0
    already_done: int = 0
    skipped: int = 0
    running: Mapping[str, str] = field(default_factory=dict)  # item key -> step
    started: float = field(default_factory=time.time)

    @property
    def remaining(self) -> int:
        """Items not finished in this run."""
        return max(0, self.total - self.done - self.failed - self.skipped)


@dataclass(frozen=True)
class RunOptions:
    """How to run a pipeline.

    Parameters
    ----------
    database : Path
        The local database folder (the shared workspace, and the ``local`` source).
    servers : mapping of str to ServerConfig
        Servers the source and steps name.
    ledger : Path or None
        The ledger file; default :data:`LEDGER_NAME` in the database folder.
    local : LocalNodeConfig or None
        Our DIMSE identity.
    executor : Executor or None
        Default: :class:`InProcessExecutor` with the pipeline's concurrency.
    concurrency : int or None
        Overrides ``run.concurrency`` of the pipeline (in-process executor).
    retry_failed : bool
        Run items that failed in an earlier run again (default True).
    progress : callable or None
        Called with a :class:`RunStatus` after every change.
    cancel : CancelToken or None
        Set it to stop the run cleanly (Ctrl-C does the same).
    cluster : str or None
        Run on Dask: ``local:N`` (a LocalCluster of N worker processes) or a
        scheduler address (``tcp://HOST:PORT``); ignored when ``executor`` is given.
    transfer_progress : callable or None
        ``(item key, ProgressEvent)`` of fetch/send steps (in-process executor only).
    on_result : callable or None
        Called with every :class:`TaskResult` (records with transfer summaries).
    """

    database: Path
    servers: Mapping[str, ServerConfig] = field(default_factory=dict, repr=False)
    ledger: Path | None = None
    local: LocalNodeConfig | None = None
    executor: Executor | None = None
    concurrency: int | None = None
    retry_failed: bool = True
    progress: Callable[[RunStatus], None] | None = None
    cancel: CancelToken | None = None
    cluster: str | None = None
    transfer_progress: ItemProgress | None = None
    on_result: Callable[[TaskResult], None] | None = None

    @property
    def ledger_path(self) -> Path:
        """Where the ledger is."""
        return self.ledger or Path(self.database) / LEDGER_NAME


@dataclass(frozen=True)
class RunReport:
    """What a run did: counts, the error of every item that failed, the reason of every
    item skipped (nothing its selection took)."""

    job_id: str
    total: int
    done: int
    failed: Mapping[str, str]
    already_done: int
    interrupted: bool
    skipped: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing failed and the run was not interrupted (skips are fine)."""
        return not self.failed and not self.interrupted


@contextlib.contextmanager
def _opener(options: RunOptions) -> Iterator[Callable[[str], object]]:
    with Database.open(options.database) as db:
        ctx = StepContext(db, WorkItem(""), "", options.servers, options.local)
        try:
            yield ctx.node
        finally:
            ctx.close()


def list_items(pipeline: Pipeline, options: RunOptions) -> list[WorkItem]:
    """The source's work items now (for ``--dry-run``); nothing is written."""
    with _opener(options) as open_node:
        return list(pipeline.source.items(open_node))  # type: ignore[arg-type]


class _Run:
    """One run's bookkeeping: ledger writes and status, on the driver thread."""

    def __init__(self, pipeline: Pipeline, options: RunOptions, ledger: Ledger) -> None:
        self.pipeline, self.options, self.ledger = pipeline, options, ledger
        self.job = pipeline.job_id
        self.cancel = options.cancel or CancelToken()
        self.failed: dict[str, str] = {}
        self.skipped: dict[str, str] = {}
        self.status = RunStatus(self.job, 0)

    def manifest(self, plan: ItemPlan, attempt: int = 1, delay: float = 0.0) -> TaskManifest:
        shared = self.pipeline.settings.workspace == "shared"
        return TaskManifest(
            self.pipeline.to_json(),
            plan.item,
            plan.done_steps,
            plan.prior_outputs,
            Path(self.options.database) if shared else None,
            self.options.servers,
            self.options.local,
            attempt,
            time.time() + delay if delay else 0.0,
        )

    def event(self, event: StepEvent) -> None:
        if event.state is StepState.RUNNING:
            if event.item_key not in self.status.running:
                self.ledger.mark_running(self.job, event.item_key)
            self.ledger.mark_running(self.job, event.item_key, event.step)
            running = {**self.status.running, event.item_key: event.step}
            self._update(running=running)
        elif event.record is not None:
            self.ledger.record(self.job, event.item_key, event.record)

    def report(
        self, result: TaskResult, manifest_of: Callable[[str], TaskManifest]
    ) -> TaskManifest | None:
        ran = any(r.state is not StepState.PENDING for r in result.records)
        if ran and result.item_key not in self.status.running:  # no live events (remote)
            self.ledger.mark_running(self.job, result.item_key)  # counts the attempt
        for record in result.records:  # executors without live events report here
            self.ledger.record(self.job, result.item_key, record)
        if self.options.on_result is not None:
            self.options.on_result(result)
        running = {k: v for k, v in self.status.running.items() if k != result.item_key}
        if self.ledger.cancel_requested(self.job):
            self.cancel.cancel()
        state = result.state
        if state is StepState.FAILED:
            previous = manifest_of(result.item_key)
            if result.retryable and previous.attempt < self.pipeline.settings.attempts:
                self._update(running=running)
                return self._retry(previous)
            self.failed[result.item_key] = result.error
            self.ledger.finish_item(self.job, result.item_key, StepState.FAILED, result.error)
            self._update(running=running, failed=self.status.failed + 1)
        elif state is StepState.DONE:
            self.ledger.finish_item(self.job, result.item_key, StepState.DONE)
            self._update(running=running, done=self.status.done + 1)
        elif state is StepState.SKIPPED:
            self.skipped[result.item_key] = result.error
            self.ledger.finish_item(self.job, result.item_key, StepState.SKIPPED, result.error)
            self._update(running=running, skipped=self.status.skipped + 1)
        else:  # stopped: back to pending, a rerun resumes it
            self.ledger.finish_item(self.job, result.item_key, StepState.PENDING)
            self._update(running=running)
        return None

    def _retry(self, previous: TaskManifest) -> TaskManifest:
        plan = self.ledger.plan_item(self.job, previous.item.key, previous.attempt)
        delay = min(30.0, 0.5 * 2 ** (previous.attempt - 1))
        return replace(self.manifest(plan, previous.attempt + 1, delay))

    def _update(self, **changes: object) -> None:
        self.status = replace(self.status, **changes)  # type: ignore[arg-type]
        if self.options.progress is not None:
            self.options.progress(self.status)


def run_pipeline(pipeline: Pipeline, options: RunOptions) -> RunReport:
    """Run or resume ``pipeline``; return what happened (errors per failed item).

    Ctrl-C (KeyboardInterrupt) or ``options.cancel`` stops it cleanly: no new
    item starts, running ones stop at the next safe point, the ledger keeps
    every finished step, and the report says ``interrupted``.
    """
    if options.executor is None and options.cluster:
        from dicomstation.pipeline.dask_executor import DaskExecutor

        options = replace(options, executor=DaskExecutor(options.cluster))
    precheck = getattr(options.executor, "check_servers", None)  # optional (Executor)
    if precheck is not None:
        precheck(options.servers)  # e.g. no secrets to a scheduler in clear: before any job
    items = list_items(pipeline, options)
    with Ledger.open(options.ledger_path) as ledger, driving(ledger.path, pipeline.job_id):
        run = _Run(pipeline, options, ledger)
        ledger.ensure_job(run.job, pipeline.name, pipeline.to_json())
        ledger.reset_stale(run.job)
        ledger.add_items(run.job, items, [s.name for s in pipeline.steps])
        plans = ledger.plan(run.job, retry_failed=options.retry_failed)
        total = ledger.job(run.job).total
        run.status = RunStatus(run.job, len(plans), already_done=total - len(plans))
        manifests = {p.item.key: run.manifest(p) for p in plans}
        latest = dict(manifests)

        def report(result: TaskResult) -> TaskManifest | None:
            follow = run.report(result, latest.__getitem__)
            if follow is not None:
                latest[follow.item.key] = follow
            return follow

        executor = options.executor or InProcessExecutor(
            options.concurrency or pipeline.settings.concurrency, options.transfer_progress
        )
        interrupted = False
        try:
            executor.run(manifests.values(), report, events=run.event, cancel=run.cancel)
        except KeyboardInterrupt:
            interrupted = True
        return RunReport(
            run.job,
            len(plans),
            run.status.done,
            dict(run.failed),
            run.status.already_done,
            interrupted or run.cancel.cancelled,
            dict(run.skipped),
        )
