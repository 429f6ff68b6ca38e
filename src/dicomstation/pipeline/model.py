"""The small, picklable values a pipeline passes around: work items, manifests, results.

Nothing here holds pixels. A :class:`TaskManifest` is everything one task (one
work item, every step) needs, and a :class:`TaskResult` is everything it hands
back; both cross process boundaries (Dask) unchanged, as plain frozen dataclasses.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dicomstation.config import LocalNodeConfig, ServerConfig
from dicomstation.errors import ConfigError
from dicomstation.models import TransferReport

__all__ = [
    "ItemState",
    "StepEvent",
    "StepRecord",
    "StepState",
    "TaskManifest",
    "TaskResult",
    "WorkItem",
    "report_json",
]


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


class StepState(enum.StrEnum):
    """State of one step of one work item in the ledger."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @classmethod
    def parse(cls, value: str | StepState) -> StepState:
        """Normalise a state name (case-insensitive); ConfigError when unknown."""
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            known = ", ".join(s.value for s in cls)
            raise ConfigError(f"unknown job state {value!r}; known: {known}") from None

    @property
    def finished(self) -> bool:
        """True for states a rerun does not run again (done, skipped, cancelled)."""
        return self in (StepState.DONE, StepState.SKIPPED, StepState.CANCELLED)


# An item's overall state uses the same names.
ItemState = StepState


@dataclass(frozen=True)
class WorkItem:
    """One unit of work: a study, or one series of it.

    Parameters
    ----------
    study_uid : str
        StudyInstanceUID.
    series_uids : tuple of str
        Only these series of the study (empty: the whole study).
    """

    study_uid: str
    series_uids: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The item's ledger key: the study UID, plus ``/series,...`` when restricted."""
        if not self.series_uids:
            return self.study_uid
        return f"{self.study_uid}/{','.join(self.series_uids)}"

    @classmethod
    def from_key(cls, key: str) -> WorkItem:
        """Inverse of :attr:`key`."""
        study, _, series = key.partition("/")
        return cls(study, tuple(s for s in series.split(",") if s))

    def describe(self) -> str:
        """``study UID`` or ``series UID(s) of study UID``, for messages."""
        if not self.series_uids:
            return f"study {self.study_uid}"
        return f"series {', '.join(self.series_uids)} of study {self.study_uid}"


@dataclass(frozen=True)
class StepRecord:
    """What one step did for one work item (a ledger row).

    Attributes
    ----------
    step : str
        The step's name in the pipeline (unique within it).
    state : StepState
        Outcome.
    outputs : tuple of str
        UIDs the step produced or touched (fetched instances, new SEG/SR series...).
    error : str
        One-line error text when it failed (names the item and what was wrong).
    started, finished : float
        Wall-clock seconds since the epoch (0 when not run).
    transfer : tuple of mapping
        Summaries of the transfers the step made (:func:`report_json`); not in the ledger.
    """

    step: str
    state: StepState
    outputs: tuple[str, ...] = ()
    error: str = ""
    started: float = 0.0
    finished: float = 0.0
    transfer: tuple[Mapping[str, Any], ...] = field(default=(), compare=False)

    @property
    def seconds(self) -> float:
        """How long the step ran."""
        return max(0.0, self.finished - self.started) if self.finished else 0.0


@dataclass(frozen=True)
class StepEvent:
    """Live progress from a task: a step started, or finished (with its record)."""

    item_key: str
    step: str
    state: StepState
    record: StepRecord | None = None
    message: str = ""


@dataclass(frozen=True)
class TaskManifest:
    """Everything one task needs, and nothing large: the recipe for one work item.

    Parameters
    ----------
    pipeline : str
        The pipeline definition as canonical JSON (:meth:`Pipeline.to_json`).
    item : WorkItem
        The work item.
    done_steps : tuple of str
        Steps already done in an earlier run (not run again).
    prior_outputs : mapping of str to tuple of str
        Outputs of those steps (e.g. the SEG UIDs a pending send must send).
    database : Path or None
        The shared local database folder; None: the task works in its own
        temporary database (deleted when the task ends).
    servers : mapping of str to ServerConfig
        The servers the steps name (with their credentials; never logged).
    local : LocalNodeConfig or None
        Our own DIMSE identity (C-MOVE destination).
    attempt : int
        1 for the first try of this item in this run.
    not_before : float
        Wall-clock time before which the task must not start (retry backoff).
    """

    pipeline: str
    item: WorkItem
    done_steps: tuple[str, ...] = ()
    prior_outputs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    database: Path | None = None
    servers: Mapping[str, ServerConfig] = field(default_factory=dict, repr=False)
    local: LocalNodeConfig | None = None
    attempt: int = 1
    not_before: float = 0.0

    @property
    def pipeline_hash(self) -> str:
        """The pipeline's definition hash (what output UIDs are derived from)."""
        return str(json.loads(self.pipeline)["hash"])


@dataclass(frozen=True)
class TaskResult:
    """What a task hands back: one record per step it ran (in order)."""

    item_key: str
    records: tuple[StepRecord, ...]
    retryable: bool = False

    @property
    def state(self) -> StepState:
        """FAILED if a step failed, CANCELLED if cancelled, PENDING if stopped, SKIPPED
        if a step had nothing to work on, else DONE."""
        states = {r.state for r in self.records}
        for state in (StepState.FAILED, StepState.CANCELLED, StepState.PENDING, StepState.SKIPPED):
            if state in states:
                return state
        return StepState.DONE

    @property
    def error(self) -> str:
        """The first failed step's error text, else the first skipped step's reason ("")."""
        for state in (StepState.FAILED, StepState.SKIPPED):
            text = next((r.error for r in self.records if r.state is state and r.error), "")
            if text:
                return text
        return ""
