"""One task: every step of one work item, from a :class:`TaskManifest`.

:func:`run_task` is a plain module-level function of picklable arguments, so any
executor (threads here, Dask workers elsewhere) can call it. It never raises a
:class:`DicomStationError`: a failing step becomes a FAILED record naming the
item and the cause, and the steps after it are not run. A step that finds
nothing its selection takes (:class:`NothingSelectedError`) makes the item
SKIPPED, with the reason, and the steps after it too. A stop request (the
cancel token, Ctrl-C) ends the task between steps, or inside a transfer that
checks the token; the interrupted step goes back to ``pending``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

from dicomstation.database import Database
from dicomstation.errors import (
    CancelledError,
    ConnectionFailedError,
    DicomStationError,
    NothingSelectedError,
    RemoteStatusError,
)
from dicomstation.nodes.base import CancelToken, ProgressCallback
from dicomstation.pipeline.definition import Pipeline
from dicomstation.pipeline.model import (
    StepEvent,
    StepRecord,
    StepState,
    TaskManifest,
    TaskResult,
    report_json,
)
from dicomstation.pipeline.nodepool import NodePool
from dicomstation.pipeline.step import Step, StepContext

__all__ = ["is_retryable", "run_task", "steps_to_run"]

EventSink = Callable[[StepEvent], None]
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def is_retryable(exc: BaseException) -> bool:
    """Whether another attempt may succeed (connection trouble, 429/5xx)."""
    if isinstance(exc, ConnectionFailedError):
        return True
    return isinstance(exc, RemoteStatusError) and exc.status in RETRYABLE_STATUS


def steps_to_run(steps: tuple[Step, ...], done: set[str], temporary: bool) -> list[bool]:
    """Which steps a task runs: not done ones, and what later not-done steps need.

    In-memory steps (load, segment) run again when a later step still has to run.
    In a temporary workspace, database-writing steps done earlier run again too
    (their files are gone; their outputs are idempotent).
    """
    pending_after = [any(s.name not in done for s in steps[i + 1 :]) for i in range(len(steps))]
    return [
        step.name not in done
        or (pending_after[i] and (step.memory_only or (temporary and step.kind != "send")))
        for i, step in enumerate(steps)
    ]


def _wait_until(moment: float, cancel: CancelToken) -> bool:
    """Wait (for a retry's backoff) until ``moment``; False when cancelled meanwhile."""
    while not cancel.cancelled:
        left = moment - time.time()
        if left <= 0:
            return True
        time.sleep(min(left, 0.1))
    return False


@contextlib.contextmanager
def _workspace(manifest: TaskManifest) -> Iterator[Database]:
    if manifest.database is None:
        with Database.temporary() as db:
            yield db
    else:
        with Database.open(manifest.database) as db:
            yield db


def run_task(
    manifest: TaskManifest,
    events: EventSink | None = None,
    cancel: CancelToken | None = None,
    progress: ProgressCallback | None = None,
    pool: NodePool | None = None,
) -> TaskResult:
    """Run the steps of one work item that are not done yet; return their records.

    ``events`` gets step events, ``progress`` the transfer progress of fetch/send
    steps (both optional: a remote worker passes neither). ``pool``: DICOMweb
    nodes shared with the executor's other tasks (None: opened for this task).
    """
    pipeline = Pipeline.from_json(manifest.pipeline)
    key = manifest.item.key
    cancel = cancel or CancelToken()
    if not _wait_until(manifest.not_before, cancel):
        return TaskResult(key, (StepRecord(pipeline.steps[0].name, StepState.PENDING),))
    try:
        with _workspace(manifest) as db:
            ctx = StepContext(
                db,
                manifest.item,
                pipeline.recipe_hash,
                manifest.servers,
                manifest.local,
                cancel,
                progress,
                outputs={k: tuple(v) for k, v in manifest.prior_outputs.items()},
                kinds=pipeline.kinds(),
                pool=pool,
            )
            try:
                return _run_steps(pipeline, manifest, ctx, events)
            finally:
                ctx.close()
    except DicomStationError as exc:  # the workspace itself (database) failed
        record = StepRecord(pipeline.steps[0].name, StepState.FAILED, error=_text(manifest, exc))
        return TaskResult(key, (record,), is_retryable(exc))


def _run_steps(
    pipeline: Pipeline, manifest: TaskManifest, ctx: StepContext, events: EventSink | None
) -> TaskResult:
    done = set(manifest.done_steps)
    plan = steps_to_run(pipeline.steps, done, manifest.database is None)
    records: list[StepRecord] = []
    for index, (step, run) in enumerate(zip(pipeline.steps, plan, strict=True)):
        if not run:
            step.restore(ctx, ctx.outputs.get(step.name, ()))
            continue
        if ctx.cancel.cancelled:
            records.append(StepRecord(step.name, StepState.PENDING))
            break
        record, retryable = _run_one(step, manifest, ctx, events)
        records.append(record)
        if record.state is StepState.SKIPPED:  # nothing for this item: the rest is skipped too
            records += [StepRecord(s.name, StepState.SKIPPED) for s in pipeline.steps[index + 1 :]]
        if record.state is not StepState.DONE:
            return TaskResult(manifest.item.key, tuple(records), retryable)
        ctx.outputs[step.name] = record.outputs
    return TaskResult(manifest.item.key, tuple(records))


def _run_one(
    step: Step, manifest: TaskManifest, ctx: StepContext, events: EventSink | None
) -> tuple[StepRecord, bool]:
    key = manifest.item.key
    if events is not None:
        events(StepEvent(key, step.name, StepState.RUNNING))
    started, reports = time.time(), len(ctx.reports)
    try:
        outputs = step.run(ctx)
        record = StepRecord(step.name, StepState.DONE, tuple(outputs), "", started, time.time())
        retryable = False
    except NothingSelectedError as exc:
        text = _text(manifest, exc, step.name)
        record = StepRecord(step.name, StepState.SKIPPED, (), text, started, time.time())
        retryable = False
    except (CancelledError, KeyboardInterrupt):
        ctx.cancel.cancel()
        record, retryable = StepRecord(step.name, StepState.PENDING, started=started), False
    except DicomStationError as exc:
        text = _text(manifest, exc, step.name)
        record = StepRecord(step.name, StepState.FAILED, (), text, started, time.time())
        retryable = is_retryable(exc)
    except Exception as exc:  # a bug or an unmapped library error: this item fails, not the run
        text = _text(manifest, f"{type(exc).__name__}: {exc}", step.name)
        record = StepRecord(step.name, StepState.FAILED, (), text, started, time.time())
        retryable = False
    transfer = tuple(report_json(r) for r in ctx.reports[reports:])
    record = replace(record, transfer=transfer)
    if events is not None:
        events(StepEvent(key, step.name, record.state, record, record.error))
    return record, retryable


def _text(manifest: TaskManifest, exc: BaseException | str, step: str = "") -> str:
    item = manifest.item.describe()
    where = item + (f", step {step}" if step else "")
    why = str(exc).removeprefix(f"{item}: ")  # a step's own message may name the item too
    return f"{where}: {why}".replace("\n", " ")[:2000]
