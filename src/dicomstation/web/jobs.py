"""Background jobs for the web UI and the demo: pipeline runs in the ledger, live progress, cancel.

Fetch, send and the viewer's exports are pipelines (:mod:`dicomstation.pipeline`)
run in a thread; their state is the job ledger's (``jobs.sqlite`` beside the
database), so they are listed after a restart of the UI and can be resumed.

Counts have one unit each: ``items_done``/``items_total`` are work items (studies
or series), ``done``/``total`` are instances, from the running steps' transfer
progress. The instance total is only given once every item has announced its own
(or finished): a partial sum would show more done than expected ("8/1").
:meth:`JobRegistry.start` still runs an arbitrary callable as a job (not persisted).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dicomstation.errors import CancelledError, DicomStationError
from dicomstation.models import ProgressEvent, TransferReport
from dicomstation.nodes.base import CancelToken
from dicomstation.pipeline import (
    JobSummary,
    Ledger,
    Pipeline,
    RunOptions,
    RunReport,
    TaskResult,
    run_pipeline,
)
from dicomstation.pipeline.model import report_json

__all__ = ["Job", "JobRegistry", "report_json"]

Work = Callable[[Callable[[ProgressEvent], None], CancelToken], list[TransferReport]]
OptionsFor = Callable[[Pipeline], RunOptions]


@dataclass
class Job:
    """One running or finished job; mutated only under the registry lock."""

    id: str
    title: str
    state: str = "running"  # running, done, failed, cancelled (stopped: resume it)
    done: int = 0
    total: int | None = None
    bytes_done: int = 0
    message: str = ""
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    reports: list[dict[str, Any]] = field(default_factory=list)
    cancel: CancelToken = field(default_factory=CancelToken)
    items: dict[str, ProgressEvent] = field(default_factory=dict)
    resumable: bool = False
    items_total: int | None = None
    settled: set[str] = field(default_factory=set)  # items finished in this run
    outputs: list[str] = field(default_factory=list)  # series UIDs the export steps made
    kind: str = ""  # fetch, send, export... (the pipeline's last step kind)

    def seconds_text(self) -> str:
        """Elapsed time, for messages."""
        return f"{(self.finished or time.monotonic()) - self.started:.2f} s"

    def as_json(self) -> dict[str, Any]:
        """What the UI shows: state, counts, rate, reports."""
        elapsed = (self.finished or time.monotonic()) - self.started
        return {
            "id": self.id,
            "title": self.title,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "bytes": self.bytes_done,
            "message": self.message,
            "seconds": round(elapsed, 2),
            "reports": self.reports,
            "resumable": self.resumable,
            "items_done": len(self.settled),
            "items_total": self.items_total,
            "outputs": self.outputs,
            "kind": self.kind,
        }


def _final_state(report: RunReport) -> tuple[str, str]:
    if report.failed:
        return "failed", next(iter(report.failed.values()))
    if report.interrupted:
        return "cancelled", "stopped; resume to finish the remaining items"
    if report.skipped:  # nothing a step's selection took: asked for one thing, it is a failure
        reason = next(iter(report.skipped.values()))
        if not report.done:
            return "failed", reason
        return "done", f"{len(report.skipped)} item(s) skipped: {reason}"
    return "done", ""


class JobRegistry:
    """Runs jobs in daemon threads and keeps their state for polling.

    Parameters
    ----------
    ledger : Path or None
        The job ledger file; pipeline jobs recorded there are listed (and resumable)
        even when this process did not start them.
    """

    def __init__(self, ledger: Path | None = None) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self.ledger = ledger

    # -- generic jobs ------------------------------------------------------------------
    def start(self, title: str, work: Work) -> Job:
        """Start ``work(progress, cancel)`` in a thread; return its job (not persisted)."""
        job = Job(uuid.uuid4().hex[:12], title)
        with self._lock:
            self._jobs[job.id] = job
        threading.Thread(
            target=self._run, args=(job, work), daemon=True, name=f"job-{job.id}"
        ).start()
        return job

    def _progress(self, job: Job, event: ProgressEvent) -> None:
        with self._lock:
            job.done = max(job.done, event.done)
            job.total = event.total if event.total is not None else job.total
            job.bytes_done = max(job.bytes_done, event.bytes_done)
            job.message = event.message or job.message

    def _run(self, job: Job, work: Work) -> None:
        state, message, reports = "done", "", []
        try:
            reports = [report_json(r) for r in work(lambda e: self._progress(job, e), job.cancel)]
            if any(r["failed"] for r in reports):
                state, message = "failed", "some instances failed"
        except CancelledError:
            state, message = "cancelled", "cancelled by the user"
        except DicomStationError as exc:
            state, message = "failed", str(exc)
        self._finish(job, state, message, reports)

    def _finish(self, job: Job, state: str, message: str, reports: list[dict[str, Any]]) -> None:
        with self._lock:
            job.state, job.finished = state, time.monotonic()
            job.reports = reports or job.reports
            job.message = message or job.message
            job.resumable = state in ("cancelled", "failed") and job.resumable
            if state == "done" and job.total is None:
                job.total = job.done

    # -- pipeline jobs -----------------------------------------------------------------
    def start_pipeline(self, pipeline: Pipeline, options: RunOptions) -> Job:
        """Run ``pipeline`` in a thread as job ``pipeline.job_id`` (the ledger's id)."""
        with self._lock:
            running = self._jobs.get(pipeline.job_id)
            if running is not None and running.state == "running":
                return running
            job = Job(pipeline.job_id, pipeline.name, resumable=True, kind=_kind(pipeline))
            work = getattr(pipeline.source, "work", None)
            job.items_total = len(work) if isinstance(work, tuple) else None
            self._jobs[job.id] = job
        threading.Thread(
            target=self._run_pipeline,
            args=(job, pipeline, options),
            daemon=True,
            name=f"job-{job.id}",
        ).start()
        return job

    def _run_pipeline(self, job: Job, pipeline: Pipeline, options: RunOptions) -> None:
        options = replace(
            options,
            cancel=job.cancel,
            transfer_progress=lambda key, event: self._item_progress(job, key, event),
            on_result=lambda result: self._result(job, result),
        )
        try:
            state, message = _final_state(run_pipeline(pipeline, options))
        except DicomStationError as exc:
            state, message = "failed", str(exc)
        outputs = self._outputs(pipeline)
        with self._lock:
            job.outputs = outputs
            if job.items_total is not None and state == "done":
                job.settled.update(f"#{n}" for n in range(job.items_total - len(job.settled)))
        self._finish(job, state, message, [])

    def _outputs(self, pipeline: Pipeline) -> list[str]:
        """Series UIDs the export steps of a ledger job made (from this run or an earlier one)."""
        exports = {name for name, kind in pipeline.kinds().items() if kind == "export"}
        if not exports or self.ledger is None or not self.ledger.exists():
            return []
        with Ledger.open(self.ledger) as ledger:
            items = ledger.items(pipeline.job_id)
        return [uid for i in items for r in i.steps if r.step in exports for uid in r.outputs]

    def _item_progress(self, job: Job, key: str, event: ProgressEvent) -> None:
        with self._lock:
            job.items[key] = event
            self._recount(job)

    def _recount(self, job: Job) -> None:
        """Instances done (all items), and their total once every item's total is known."""
        events = list(job.items.values())
        job.done = sum(e.done for e in events)
        job.bytes_done = sum(e.bytes_done for e in events)
        known = {k for k, e in job.items.items() if e.total is not None} | job.settled
        complete = job.items_total is not None and len(known) >= job.items_total
        job.total = sum(max(e.total or 0, e.done) for e in events) if complete else None

    def _result(self, job: Job, result: TaskResult) -> None:
        with self._lock:
            job.reports += [dict(t) for r in result.records for t in r.transfer]
            job.settled.add(result.item_key)
            self._recount(job)

    def resume(self, job_id: str, options_for: OptionsFor) -> Job:
        """Run a ledger job again (its pending and failed items); KeyError if unknown."""
        if self.ledger is None or not self.ledger.exists():
            raise KeyError(job_id)
        with Ledger.open(self.ledger) as ledger:
            try:
                definition = ledger.job(job_id).definition
            except DicomStationError:
                raise KeyError(job_id) from None
            ledger.retry(job_id)
        pipeline = Pipeline.from_json(definition)
        return self.start_pipeline(pipeline, options_for(pipeline))

    # -- reading -----------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        """The job with that id (live, or from the ledger), if any."""
        with self._lock:
            live = self._jobs.get(job_id)
        if live is not None:
            return live
        return next((j for j in self._stored() if j.id == job_id), None)

    def all(self) -> list[dict[str, Any]]:
        """Every job, newest first, as JSON (ledger jobs this process did not run included)."""
        with self._lock:
            live = sorted(self._jobs.values(), key=lambda j: -j.started)
            known = set(self._jobs)
        stored = [j for j in self._stored() if j.id not in known]
        return [j.as_json() for j in [*live, *stored]]

    def _stored(self) -> list[Job]:
        if self.ledger is None or not self.ledger.exists():
            return []
        with Ledger.open(self.ledger) as ledger:
            return [_stored_job(summary) for summary in ledger.jobs()]

    def wait(self, job_id: str, timeout: float = 600.0) -> Job:
        """Block until the job ends (for the headless demo and tests)."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job is None or job.state != "running" or time.monotonic() > deadline:
                if job is None:
                    raise KeyError(job_id)
                return job
            time.sleep(0.05)


def _kind(pipeline: Pipeline) -> str:
    """What a UI job does, for the page: the kind of its last step (fetch, send, export)."""
    return pipeline.steps[-1].kind


def _stored_job(summary: JobSummary) -> Job:
    """A ledger job this process is not running, as a (finished) Job.

    Its counts are work items only (``items_done``/``items_total``); the instance
    counts of a run of another process are not known (``total`` None).
    """
    counts: dict[str, int] = summary.counts
    left = counts.get("pending", 0) + counts.get("running", 0) + counts.get("cancelled", 0)
    skipped, done = counts.get("skipped", 0), counts.get("done", 0)
    failed = counts.get("failed", 0) or (skipped and not done)  # as _final_state says
    state = "failed" if failed else "cancelled" if left else "done"
    message = f"{left} item(s) left; resume to finish them" if left else ""
    if skipped and not left:
        message = f"{skipped} item(s) skipped: nothing their selection took"
    job = Job(summary.job_id, summary.name, state)
    job.message, job.finished, job.started = message, time.monotonic(), time.monotonic()
    job.items_total = summary.total
    job.settled = {f"#{n}" for n in range(counts.get("done", 0) + counts.get("skipped", 0))}
    job.resumable = state != "done"
    return job
