"""Background jobs (fetch, send) with live progress and cancel, for the web UI and the demo."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dicomstation.errors import CancelledError, DicomStationError
from dicomstation.models import ProgressEvent, TransferReport
from dicomstation.nodes.base import CancelToken

__all__ = ["Job", "JobRegistry", "report_json"]

Work = Callable[[Callable[[ProgressEvent], None], CancelToken], list[TransferReport]]


def report_json(report: TransferReport) -> dict[str, Any]:
    """A transfer report as plain JSON (counts, failures with reasons)."""
    return {
        "operation": report.operation,
        "succeeded": len(report.succeeded),
        "skipped": len(report.skipped),
        "failed": dict(report.failed),
        "bytes": report.bytes_transferred,
        "seconds": round(report.seconds, 3),
    }


@dataclass
class Job:
    """One running or finished job; mutated only under the registry lock."""

    id: str
    title: str
    state: str = "running"  # running, done, failed, cancelled
    done: int = 0
    total: int | None = None
    bytes_done: int = 0
    message: str = ""
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    reports: list[dict[str, Any]] = field(default_factory=list)
    cancel: CancelToken = field(default_factory=CancelToken)

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
        }


class JobRegistry:
    """Runs jobs in daemon threads and keeps their state for polling."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, title: str, work: Work) -> Job:
        """Start ``work(progress, cancel)`` in a thread; return its job."""
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
        with self._lock:
            job.state, job.reports, job.finished = state, reports, time.monotonic()
            job.message = message or job.message
            if state == "done" and job.total is None:
                job.total = job.done

    def get(self, job_id: str) -> Job | None:
        """The job with that id, if any."""
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[dict[str, Any]]:
        """Every job, newest first, as JSON."""
        with self._lock:
            return [j.as_json() for j in sorted(self._jobs.values(), key=lambda j: -j.started)]

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
