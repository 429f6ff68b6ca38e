"""UPS workitems in SQLite (PS3.4 Annex CC state machine), safe with several processes.

One file beside the database (``ups.sqlite``, WAL). Every operation is one
``BEGIN IMMEDIATE`` transaction, so two processes claiming the same workitem
cannot both win. Event reports (PS3.4 CC.2.4) go into an ``events`` table in
the same transaction as the change; WebSocket channels read it, so a change made
by any process reaches every subscriber.

Leases (an extension): a claim holds the workitem for ``lease`` seconds; each
update with the Transaction UID renews it. An IN PROGRESS workitem whose lease
has run out may be claimed again (the old Transaction UID stops working), so a
performer that died does not hold its work forever.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydicom.uid import generate_uid

from dicomstation.database.wal import connect_wal
from dicomstation.dicomjson import tag_hex
from dicomstation.errors import DatabaseError, DicomStationError

__all__ = ["GLOBAL_SUBSCRIPTION", "UPS_NAME", "UpsError", "UpsEvent", "UpsState", "UpsStore"]

UPS_NAME = "ups.sqlite"
#: The well-known UID of the global subscription (PS3.4 CC.3.1).
GLOBAL_SUBSCRIPTION = "1.2.840.10008.5.1.4.34.5"
FILTERED_GLOBAL = "1.2.840.10008.5.1.4.34.5.1"
UPS_PUSH_CLASS = "1.2.840.10008.5.1.4.34.6.1"
STATE = tag_hex("ProcedureStepState")
TRANSACTION = tag_hex("TransactionUID")
SOP_UID = tag_hex("SOPInstanceUID")
MAX_EVENTS = 10_000
#: Bounds on what peers can make the store hold.
MAX_WORKITEMS = 100_000
MAX_SUBSCRIPTIONS = 1_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS workitems (
  uid TEXT PRIMARY KEY, state TEXT NOT NULL, txn TEXT, lease REAL, dataset TEXT NOT NULL,
  cancel_requested INTEGER NOT NULL DEFAULT 0, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (
  aet TEXT NOT NULL, uid TEXT NOT NULL, deletion_lock INTEGER NOT NULL, PRIMARY KEY (aet, uid));
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, uid TEXT NOT NULL, report TEXT NOT NULL);
"""


class UpsState(StrEnum):
    """Procedure Step State (0074,1000)."""

    SCHEDULED = "SCHEDULED"
    IN_PROGRESS = "IN PROGRESS"
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"


class UpsError(DicomStationError):
    """A UPS request refused: ``status`` is the HTTP status (400, 404, 409)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class UpsEvent:
    """One event report: its sequence number, workitem UID and DICOM JSON."""

    seq: int
    uid: str
    report: dict[str, Any]


def _el(vr: str, *value: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": list(value)} if value else {"vr": vr}


def state_of(dataset: Mapping[str, Any]) -> str:
    """The Procedure Step State of a DICOM JSON dataset ('' when absent)."""
    value = dataset.get(STATE, {}).get("Value") or [""]
    return str(value[0])


class UpsStore:
    """The workitems, subscriptions and event reports of one server.

    Parameters
    ----------
    path : Path
        The SQLite file (created with its folder).
    lease_seconds : float
        The longest lease a claim gets (a claimer may ask for less).
    """

    def __init__(self, path: Path, lease_seconds: float = 300.0) -> None:
        self.path = path
        self.lease_seconds = lease_seconds
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = self._connect()
            try:
                con.executescript(_SCHEMA)
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open the UPS store {path}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        return connect_wal(self.path, timeout=30.0)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            yield con
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    # -- workitems ---------------------------------------------------------------
    def create(self, uid: str | None, dataset: dict[str, Any]) -> str:
        """Store a new SCHEDULED workitem; return its UID (409 when it exists)."""
        uid = uid or generate_uid()
        dataset = dict(dataset)
        dataset[SOP_UID] = _el("UI", uid)
        dataset[tag_hex("SOPClassUID")] = _el("UI", UPS_PUSH_CLASS)
        with self._tx() as con:
            if con.execute("SELECT 1 FROM workitems WHERE uid=?", (uid,)).fetchone():
                raise UpsError(409, f"workitem {uid} already exists")
            if con.execute("SELECT COUNT(*) FROM workitems").fetchone()[0] >= MAX_WORKITEMS:
                raise UpsError(503, f"the worklist holds {MAX_WORKITEMS} workitems: no more")
            con.execute(
                "INSERT INTO workitems (uid, state, dataset, updated) VALUES (?, ?, ?, ?)",
                (uid, UpsState.SCHEDULED.value, json.dumps(dataset), time.time()),
            )
            self._event(con, uid, dataset, 1)
        return uid

    def get(self, uid: str) -> dict[str, Any]:
        """The workitem's dataset (its Transaction UID is never included)."""
        con = self._connect()
        try:
            row = con.execute("SELECT dataset FROM workitems WHERE uid=?", (uid,)).fetchone()
        finally:
            con.close()
        if row is None:
            raise UpsError(404, f"no workitem {uid}")
        dataset: dict[str, Any] = json.loads(row[0])
        return dataset

    def all(self, state: str | None = None) -> list[dict[str, Any]]:
        """Every workitem's dataset (of one state), oldest first."""
        con = self._connect()
        try:
            sql = "SELECT dataset FROM workitems"
            rows = con.execute(
                sql + (" WHERE state=? ORDER BY rowid" if state else " ORDER BY rowid"),
                (state,) if state else (),
            ).fetchall()
        finally:
            con.close()
        return [json.loads(r[0]) for r in rows]

    def _row(
        self, con: sqlite3.Connection, uid: str
    ) -> tuple[str, str | None, float, dict[str, Any]]:
        row = con.execute(
            "SELECT state, txn, lease, dataset FROM workitems WHERE uid=?", (uid,)
        ).fetchone()
        if row is None:
            raise UpsError(404, f"no workitem {uid}")
        return str(row[0]), row[1], float(row[2] or 0.0), json.loads(row[3])

    def _owner(self, uid: str, state: str, txn: str | None, given: str | None) -> None:
        if state in (UpsState.COMPLETED.value, UpsState.CANCELED.value):
            raise UpsError(409, f"workitem {uid} is {state}: it can no longer change")
        if state == UpsState.IN_PROGRESS.value:
            if not given:
                raise UpsError(
                    400, f"workitem {uid} is IN PROGRESS: the Transaction UID is missing"
                )
            if given != txn:
                raise UpsError(409, f"workitem {uid}: the Transaction UID is not the owner's")

    def update(
        self, uid: str, given_txn: str | None, changes: Mapping[str, Any], lease: float | None
    ) -> None:
        """Merge ``changes`` into the workitem (the owner only, when IN PROGRESS)."""
        for tag in (STATE, TRANSACTION, SOP_UID):
            if tag in changes:
                raise UpsError(400, f"workitem {uid}: ({tag[:4]},{tag[4:]}) cannot be updated")
        with self._tx() as con:
            state, txn, _lease, dataset = self._row(con, uid)
            self._owner(uid, state, txn, given_txn)
            dataset.update(changes)
            renew = (
                time.time() + self._lease(lease) if state == UpsState.IN_PROGRESS.value else None
            )
            con.execute(
                "UPDATE workitems SET dataset=?, updated=?, lease=COALESCE(?, lease) WHERE uid=?",
                (json.dumps(dataset), time.time(), renew, uid),
            )
            if tag_hex("ProcedureStepProgressInformationSequence") in changes:
                self._event(con, uid, dataset, 3)

    def _lease(self, asked: float | None) -> float:
        if asked is None or asked <= 0:
            return self.lease_seconds
        return min(float(asked), self.lease_seconds)

    def change_state(
        self, uid: str, given_txn: str | None, new: str, lease: float | None = None
    ) -> None:
        """Claim (IN PROGRESS), complete or cancel the workitem (PS3.4 CC.2.1.3)."""
        try:
            target = UpsState(new)
        except ValueError:
            raise UpsError(400, f"workitem {uid}: no Procedure Step State {new!r}") from None
        if not given_txn:
            raise UpsError(400, f"workitem {uid}: the Transaction UID is missing")
        with self._tx() as con:
            state, txn, expires, dataset = self._row(con, uid)
            if target is UpsState.SCHEDULED:
                raise UpsError(400, f"workitem {uid}: a workitem cannot go back to SCHEDULED")
            if target is UpsState.IN_PROGRESS:
                self._claim(uid, state, expires, given_txn)
            else:
                if state == UpsState.SCHEDULED.value:
                    raise UpsError(409, f"workitem {uid} is SCHEDULED: claim it first")
                self._owner(uid, state, txn, given_txn)
            dataset[STATE] = _el("CS", target.value)
            until = time.time() + self._lease(lease) if target is UpsState.IN_PROGRESS else None
            con.execute(
                "UPDATE workitems SET state=?, txn=?, lease=?, dataset=?, updated=? WHERE uid=?",
                (target.value, given_txn, until, json.dumps(dataset), time.time(), uid),
            )
            self._event(con, uid, dataset, 1)

    def _claim(self, uid: str, state: str, expires: float, given: str) -> None:
        if state == UpsState.IN_PROGRESS.value and expires > time.time():
            raise UpsError(409, f"workitem {uid} is already IN PROGRESS")
        if state in (UpsState.COMPLETED.value, UpsState.CANCELED.value):
            raise UpsError(409, f"workitem {uid} is {state}: it cannot be claimed")

    def request_cancel(self, uid: str, reason: str) -> str:
        """Cancel a SCHEDULED workitem at once; ask the performer of an IN PROGRESS one."""
        with self._tx() as con:
            state, _txn, _lease, dataset = self._row(con, uid)
            if state in (UpsState.COMPLETED.value, UpsState.CANCELED.value):
                raise UpsError(409, f"workitem {uid} is {state}: it cannot be canceled")
            if state == UpsState.SCHEDULED.value:
                dataset[STATE] = _el("CS", UpsState.CANCELED.value)
                con.execute(
                    "UPDATE workitems SET state=?, dataset=?, updated=? WHERE uid=?",
                    (UpsState.CANCELED.value, json.dumps(dataset), time.time(), uid),
                )
                self._event(con, uid, dataset, 1)
                return UpsState.CANCELED.value
            con.execute("UPDATE workitems SET cancel_requested=1 WHERE uid=?", (uid,))
            extra = {tag_hex("ReasonForCancellation"): _el("LT", reason[:1024])} if reason else {}
            self._event(con, uid, dataset, 2, extra)
            return UpsState.IN_PROGRESS.value

    # -- subscriptions and events --------------------------------------------------
    def subscribe(self, aet: str, uid: str, deletion_lock: bool) -> None:
        """Subscribe ``aet`` to one workitem or to all (``GLOBAL_SUBSCRIPTION``)."""
        with self._tx() as con:
            if uid not in (GLOBAL_SUBSCRIPTION, FILTERED_GLOBAL):
                self._row(con, uid)
            if con.execute("SELECT COUNT(*) FROM subscriptions").fetchone()[0] >= MAX_SUBSCRIPTIONS:
                raise UpsError(503, f"{MAX_SUBSCRIPTIONS} subscriptions exist: no more")
            con.execute(
                "INSERT OR REPLACE INTO subscriptions VALUES (?, ?, ?)",
                (aet, uid, int(deletion_lock)),
            )

    def unsubscribe(self, aet: str, uid: str) -> None:
        """Remove a subscription (404 when there is none)."""
        with self._tx() as con:
            cursor = con.execute("DELETE FROM subscriptions WHERE aet=? AND uid=?", (aet, uid))
            if cursor.rowcount == 0:
                raise UpsError(404, f"{aet} has no subscription to {uid}")

    def _event(
        self,
        con: sqlite3.Connection,
        uid: str,
        dataset: Mapping[str, Any],
        event_type: int,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        report: dict[str, Any] = {
            tag_hex("AffectedSOPClassUID"): _el("UI", UPS_PUSH_CLASS),
            tag_hex("AffectedSOPInstanceUID"): _el("UI", uid),
            tag_hex("EventTypeID"): _el("US", event_type),
            STATE: dataset.get(STATE, _el("CS", UpsState.SCHEDULED.value)),
        }
        readiness = tag_hex("InputReadinessState")
        if readiness in dataset:
            report[readiness] = dataset[readiness]
        report.update(extra or {})
        con.execute("INSERT INTO events (uid, report) VALUES (?, ?)", (uid, json.dumps(report)))
        con.execute(
            "DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?", (MAX_EVENTS,)
        )

    def last_event(self) -> int:
        """The newest event's sequence number (0 when none)."""
        con = self._connect()
        try:
            return int(con.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
        finally:
            con.close()

    def events_for(self, aet: str, after: int, limit: int = 100) -> list[UpsEvent]:
        """Events after ``after`` for the workitems ``aet`` subscribes to (or all, globally)."""
        con = self._connect()
        try:
            rows = con.execute(
                "SELECT e.seq, e.uid, e.report FROM events e WHERE e.seq > ? AND EXISTS ("
                " SELECT 1 FROM subscriptions s WHERE s.aet = ? AND s.uid IN (e.uid, ?, ?))"
                " ORDER BY e.seq LIMIT ?",
                (after, aet, GLOBAL_SUBSCRIPTION, FILTERED_GLOBAL, limit),
            ).fetchall()
        finally:
            con.close()
        return [UpsEvent(int(s), str(u), json.loads(r)) for s, u, r in rows]
