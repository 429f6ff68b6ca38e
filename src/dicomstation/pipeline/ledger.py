"""The job ledger: state per job, work item and step, in one SQLite file (WAL).

A *job* is one pipeline definition run over one source; its id is the hash of
that definition, so running the same pipeline file again is the same job and
resumes it. Each (item, step) row holds a :class:`StepState`, attempts, error
text, output UIDs and timings. Only the driver writes the ledger; tasks report
:class:`StepRecord` values to it. Every change is one short transaction, so a
driver killed at any moment leaves it consistent: rows it had marked
``running`` are put back to ``pending`` by :meth:`Ledger.reset_stale` at the
next start.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from dicomstation.database.wal import connect_wal
from dicomstation.errors import DatabaseError, NotFoundError
from dicomstation.pipeline.model import StepRecord, StepState, WorkItem

__all__ = ["LEDGER_NAME", "ItemPlan", "ItemStatus", "JobSummary", "Ledger"]

#: The ledger's file name, beside the local database's index.
LEDGER_NAME = "jobs.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, name TEXT NOT NULL, definition TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL, cancel INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS items (
    job_id TEXT NOT NULL REFERENCES jobs(job_id) ON DELETE CASCADE, item_key TEXT NOT NULL,
    position INTEGER NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '', updated REAL NOT NULL, PRIMARY KEY (job_id, item_key));
CREATE TABLE IF NOT EXISTS steps (
    job_id TEXT NOT NULL, item_key TEXT NOT NULL, step TEXT NOT NULL, position INTEGER NOT NULL,
    state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '',
    outputs TEXT NOT NULL DEFAULT '[]', started REAL NOT NULL DEFAULT 0,
    finished REAL NOT NULL DEFAULT 0, PRIMARY KEY (job_id, item_key, step),
    FOREIGN KEY (job_id, item_key) REFERENCES items(job_id, item_key) ON DELETE CASCADE);
"""


@dataclass(frozen=True)
class JobSummary:
    """One job: its definition and item counts per state."""

    job_id: str
    name: str
    definition: str
    created: float
    updated: float
    counts: dict[str, int]
    cancel_requested: bool = False

    @property
    def total(self) -> int:
        """Number of work items."""
        return sum(self.counts.values())


@dataclass(frozen=True)
class ItemStatus:
    """One work item of a job, with its steps."""

    item: WorkItem
    state: StepState
    attempts: int
    error: str
    steps: tuple[StepRecord, ...]


@dataclass(frozen=True)
class ItemPlan:
    """What a run still has to do for one item (input to a :class:`TaskManifest`)."""

    item: WorkItem
    done_steps: tuple[str, ...]
    prior_outputs: dict[str, tuple[str, ...]]
    attempts: int


class Ledger:
    """The job ledger in one SQLite file. Thread-safe; use :meth:`open`."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._lock = threading.RLock()

    @classmethod
    def open(cls, path: Path | str) -> Ledger:
        """Open (creating if needed) the ledger file ``path``; DatabaseError when it cannot."""
        where = Path(path).expanduser().resolve()
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
            conn = connect_wal(where, timeout=30.0, check_same_thread=False)
            # WAL + NORMAL: a killed process loses nothing committed; a power cut may lose the
            # last records, and then the rerun redoes those items (outputs are idempotent).
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise DatabaseError(f"cannot open the job ledger {where}: {exc}") from exc
        return cls(where, conn)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise DatabaseError(f"job ledger {self.path}: {exc}") from exc

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            try:
                return list(self._conn.execute(sql, params))
            except sqlite3.Error as exc:
                raise DatabaseError(f"job ledger {self.path}: {exc}") from exc

    # -- jobs and items ----------------------------------------------------------------
    def ensure_job(self, job_id: str, name: str, definition: str) -> None:
        """Create the job if new; a rerun of the same definition clears its cancel flag."""
        now = time.time()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT(job_id) "
                "DO UPDATE SET updated = excluded.updated, cancel = 0",
                (job_id, name, definition, now, now),
            )

    def add_items(self, job_id: str, items: Sequence[WorkItem], steps: Sequence[str]) -> int:
        """Add work items (and their steps, pending) not yet in the job; return how many."""
        now, added = time.time(), 0
        with self._write() as conn:
            (start,) = conn.execute(
                "SELECT COALESCE(MAX(position) + 1, 0) FROM items WHERE job_id = ?", (job_id,)
            ).fetchone()
            for item in items:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO items (job_id, item_key, position, state, updated) "
                    "VALUES (?, ?, ?, 'pending', ?)",
                    (job_id, item.key, start + added, now),
                )
                if cursor.rowcount:
                    added += 1
                for position, step in enumerate(steps):
                    conn.execute(
                        "INSERT OR IGNORE INTO steps (job_id, item_key, step, position, state) "
                        "VALUES (?, ?, ?, ?, 'pending')",
                        (job_id, item.key, step, position),
                    )
        return added

    def reset_stale(self, job_id: str) -> int:
        """Put items and steps a dead driver left ``running`` back to ``pending``."""
        with self._write() as conn:
            conn.execute(
                "UPDATE steps SET state = 'pending' WHERE job_id = ? AND state = 'running'",
                (job_id,),
            )
            cursor = conn.execute(
                "UPDATE items SET state = 'pending' WHERE job_id = ? AND state = 'running'",
                (job_id,),
            )
            return cursor.rowcount

    def plan(self, job_id: str, *, retry_failed: bool = True) -> list[ItemPlan]:
        """Items still to run, in order: pending ones, and failed ones when ``retry_failed``."""
        failed = "failed" if retry_failed else "pending"
        rows = self._read(
            "SELECT item_key, attempts FROM items WHERE job_id = ? AND state IN ('pending', ?) "
            "ORDER BY position",
            (job_id, failed),
        )
        return [self.plan_item(job_id, str(key), int(str(attempts))) for key, attempts in rows]

    def plan_item(self, job_id: str, key: str, attempts: int = 0) -> ItemPlan:
        """What is still to do for one item (its done steps and their outputs)."""
        done = {
            str(step): tuple(json.loads(str(outputs)))
            for step, outputs in self._read(
                "SELECT step, outputs FROM steps WHERE job_id = ? AND item_key = ? "
                "AND state IN ('done', 'skipped') ORDER BY position",
                (job_id, key),
            )
        }
        return ItemPlan(WorkItem.from_key(key), tuple(done), done, attempts)

    # -- progress ----------------------------------------------------------------------
    def mark_running(self, job_id: str, item_key: str, step: str | None = None) -> None:
        """An item (and optionally one of its steps) started; counts an attempt."""
        now = time.time()
        with self._write() as conn:
            if step is None:
                conn.execute(
                    "UPDATE items SET state = 'running', attempts = attempts + 1, updated = ? "
                    "WHERE job_id = ? AND item_key = ?",
                    (now, job_id, item_key),
                )
                return
            conn.execute(
                "UPDATE steps SET state = 'running', attempts = attempts + 1, started = ?, "
                "finished = 0, error = '' WHERE job_id = ? AND item_key = ? AND step = ?",
                (now, job_id, item_key, step),
            )

    def record(self, job_id: str, item_key: str, record: StepRecord) -> None:
        """Store a step's outcome."""
        with self._write() as conn:
            conn.execute(
                "UPDATE steps SET state = ?, error = ?, outputs = ?, started = ?, finished = ? "
                "WHERE job_id = ? AND item_key = ? AND step = ?",
                (
                    record.state.value,
                    record.error,
                    json.dumps(list(record.outputs)),
                    record.started,
                    record.finished,
                    job_id,
                    item_key,
                    record.step,
                ),
            )

    def finish_item(self, job_id: str, item_key: str, state: StepState, error: str = "") -> None:
        """Store an item's overall outcome; steps left ``running`` go back to ``pending``."""
        with self._write() as conn:
            conn.execute(
                "UPDATE items SET state = ?, error = ?, updated = ? "
                "WHERE job_id = ? AND item_key = ?",
                (state.value, error, time.time(), job_id, item_key),
            )
            conn.execute(
                "UPDATE steps SET state = 'pending' WHERE job_id = ? AND item_key = ? "
                "AND state = 'running'",
                (job_id, item_key),
            )
            conn.execute("UPDATE jobs SET updated = ? WHERE job_id = ?", (time.time(), job_id))

    # -- control -----------------------------------------------------------------------
    def retry(self, job_id: str, item_key: str | None = None) -> int:
        """Failed, cancelled or skipped items (all, or one) back to pending; return how many.

        A skipped item had nothing its selection took; the study may have more series now.
        """
        return self._set_items(job_id, item_key, ("failed", "cancelled", "skipped"), "pending")

    def cancel(self, job_id: str, item_key: str | None = None) -> int:
        """Pending and failed items (all, or one) become cancelled; a running driver stops."""
        if item_key is None:
            with self._write() as conn:
                conn.execute("UPDATE jobs SET cancel = 1 WHERE job_id = ?", (job_id,))
        return self._set_items(job_id, item_key, ("pending", "failed", "running"), "cancelled")

    def cancel_requested(self, job_id: str) -> bool:
        """True once :meth:`cancel` was called for the whole job (by any process)."""
        rows = self._read("SELECT cancel FROM jobs WHERE job_id = ?", (job_id,))
        return bool(rows and rows[0][0])

    def item_state(self, job_id: str, item_key: str) -> StepState:
        """The item's state now (NotFoundError when the job has no such item)."""
        rows = self._read(
            "SELECT state FROM items WHERE job_id = ? AND item_key = ?", (job_id, item_key)
        )
        if not rows:
            raise NotFoundError(f"job {job_id} has no work item {item_key}")
        return StepState(str(rows[0][0]))

    def _set_items(self, job_id: str, key: str | None, old: Sequence[str], new: str) -> int:
        marks = ",".join("?" * len(old))
        one = " AND item_key = ?" if key else ""
        keys = [key] if key else []
        with self._write() as conn:
            cursor = conn.execute(
                f"UPDATE items SET state = ?, updated = ? "
                f"WHERE job_id = ? AND state IN ({marks}){one}",
                [new, time.time(), job_id, *old, *keys],
            )
            if new == "pending":
                conn.execute(
                    "UPDATE steps SET state = 'pending' WHERE job_id = ? "
                    f"AND state IN ('failed', 'cancelled', 'running', 'skipped'){one}",
                    [job_id, *keys],
                )
            return cursor.rowcount

    # -- reading -----------------------------------------------------------------------
    def jobs(self) -> list[JobSummary]:
        """Every job, most recently updated first."""
        rows = self._read("SELECT job_id FROM jobs ORDER BY updated DESC")
        return [self.job(str(row[0])) for row in rows]

    def resolve(self, prefix: str) -> str:
        """The job id starting with ``prefix`` (NotFoundError when none or ambiguous)."""
        rows = self._read("SELECT job_id FROM jobs WHERE job_id LIKE ? || '%'", (prefix,))
        if len(rows) != 1:
            what = "no job" if not rows else f"{len(rows)} jobs"
            raise NotFoundError(f"{what} with an id starting {prefix!r} in {self.path}")
        return str(rows[0][0])

    def job(self, job_id: str) -> JobSummary:
        """One job with its item counts per state."""
        rows = self._read(
            "SELECT job_id, name, definition, created, updated, cancel FROM jobs WHERE job_id = ?",
            (job_id,),
        )
        if not rows:
            raise NotFoundError(f"no job {job_id} in {self.path}")
        jid, name, definition, created, updated, cancel = rows[0]
        counts = {
            str(state): int(str(n))
            for state, n in self._read(
                "SELECT state, COUNT(*) FROM items WHERE job_id = ? GROUP BY state", (job_id,)
            )
        }
        return JobSummary(
            str(jid),
            str(name),
            str(definition),
            float(str(created)),
            float(str(updated)),
            counts,
            bool(cancel),
        )

    def items(self, job_id: str) -> list[ItemStatus]:
        """Every work item of a job, in order, with its steps."""
        rows = self._read(
            "SELECT item_key, state, attempts, error FROM items WHERE job_id = ? ORDER BY position",
            (job_id,),
        )
        return [
            ItemStatus(
                WorkItem.from_key(str(key)),
                StepState(str(state)),
                int(str(attempts)),
                str(error),
                self._steps(job_id, str(key)),
            )
            for key, state, attempts, error in rows
        ]

    def _steps(self, job_id: str, key: str) -> tuple[StepRecord, ...]:
        rows = self._read(
            "SELECT step, state, outputs, error, started, finished FROM steps "
            "WHERE job_id = ? AND item_key = ? ORDER BY position",
            (job_id, key),
        )
        return tuple(
            StepRecord(
                str(step),
                StepState(str(state)),
                tuple(json.loads(str(outputs))),
                str(error),
                float(str(started)),
                float(str(finished)),
            )
            for step, state, outputs, error, started, finished in rows
        )
