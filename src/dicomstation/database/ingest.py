"""Batched, atomic writes of the index: insert scanned files, delete rows.

Order of operations for each batch: files are moved into place first, rows are
committed after, and if the commit fails the moves are undone. A row therefore
never points at a missing or partial file.
"""

from __future__ import annotations

import enum
import os
import sqlite3
import time
from pathlib import Path

from dicomstation.database.importer import Scanned
from dicomstation.errors import DatabaseError
from dicomstation.models import Level, TransferReport

__all__ = ["Mode", "delete_rows", "insert_batch"]


class Mode(enum.Enum):
    """How an ingested file reaches the store."""

    COPY = "copy"  # a staged copy is moved into place
    MOVE = "move"  # the source itself is moved into place (duplicates deleted)
    REFERENCE = "reference"  # indexed where it is, never deleted by the database


def _target(files: Path, fields: dict[str, object]) -> Path:
    return (
        files
        / str(fields["StudyInstanceUID"])
        / str(fields["SeriesInstanceUID"])
        / (f"{fields['SOPInstanceUID']}.dcm")
    )


def _place(item: Scanned, files: Path, mode: Mode, folders: set[Path]) -> Path:
    assert item.fields is not None
    if mode is Mode.REFERENCE:
        return Path(os.path.abspath(item.source))
    target = _target(files, item.fields)
    if target.parent not in folders:  # a series' folder is made once per batch, not per file
        target.parent.mkdir(parents=True, exist_ok=True)
        folders.add(target.parent)
    os.replace(item.staged if mode is Mode.COPY and item.staged else item.source, target)
    return target


def _undo(placed: list[tuple[Scanned, Path]], mode: Mode) -> None:
    for item, target in placed:
        if mode is Mode.MOVE:
            os.replace(target, item.source)
        elif mode is Mode.COPY:
            target.unlink(missing_ok=True)


def _discard(item: Scanned, mode: Mode) -> None:
    if mode is Mode.COPY and item.staged:
        Path(item.staged).unlink(missing_ok=True)
    elif mode is Mode.MOVE:
        Path(item.source).unlink(missing_ok=True)


def _rows(conn: sqlite3.Connection, item: Scanned, path: Path, mode: Mode) -> None:
    f = item.fields
    assert f is not None
    g = f.get
    conn.execute(
        "INSERT OR IGNORE INTO patients (patient_id, patient_name, birth_date, sex)"
        " VALUES (?, ?, ?, ?)",
        (g("PatientID", ""), g("PatientName", ""), g("PatientBirthDate", ""), g("PatientSex", "")),
    )
    key = conn.execute(
        "SELECT patient_key FROM patients WHERE patient_id = ? AND patient_name = ?"
        " AND birth_date = ?",
        (g("PatientID", ""), g("PatientName", ""), g("PatientBirthDate", "")),
    ).fetchone()[0]
    conn.execute(
        "INSERT OR IGNORE INTO studies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            f["StudyInstanceUID"],
            key,
            g("StudyDate", ""),
            g("StudyTime", ""),
            g("AccessionNumber", ""),
            g("StudyDescription", ""),
            g("ReferringPhysicianName", ""),
            g("StudyID", ""),
            time.time(),
        ),
    )
    conn.execute(
        "INSERT OR IGNORE INTO series VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            f["SeriesInstanceUID"],
            f["StudyInstanceUID"],
            g("Modality", ""),
            g("SeriesNumber"),
            g("SeriesDescription", ""),
            g("BodyPartExamined", ""),
            g("SeriesDate", ""),
            g("FrameOfReferenceUID", ""),
        ),
    )
    conn.execute(
        "INSERT INTO instances VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
        (
            f["SOPInstanceUID"],
            f["SeriesInstanceUID"],
            f["SOPClassUID"],
            g("InstanceNumber"),
            g("NumberOfFrames"),
            g("Rows"),
            g("Columns"),
            str(path),
            item.size,
            item.transfer_syntax,
            0 if mode is Mode.REFERENCE else 1,
        ),
    )


def insert_batch(
    conn: sqlite3.Connection, files: Path, batch: list[Scanned], mode: Mode
) -> TransferReport:
    """Place and index one batch in a single transaction; report per source file."""
    failed = {s.source: s.error or "unknown error" for s in batch if s.fields is None}
    good = [s for s in batch if s.fields is not None]
    uids = [str(s.fields["SOPInstanceUID"]) for s in good if s.fields]
    marks = ",".join("?" * len(uids))
    present = (
        {
            r[0]
            for r in conn.execute(f"SELECT sop_uid FROM instances WHERE sop_uid IN ({marks})", uids)
        }
        if uids
        else set()
    )
    placed: list[tuple[Scanned, Path]] = []
    skipped: list[str] = []
    folders: set[Path] = set()
    try:
        for item in good:
            assert item.fields is not None
            uid = str(item.fields["SOPInstanceUID"])
            if uid in present:
                skipped.append(item.source)
                _discard(item, mode)
                continue
            present.add(uid)
            placed.append((item, _place(item, files, mode, folders)))
        conn.execute("BEGIN IMMEDIATE")
        try:
            for item, path in placed:
                _rows(conn, item, path, mode)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except (OSError, sqlite3.Error) as exc:
        _undo(placed, mode)
        raise DatabaseError(f"cannot index files (nothing kept from this batch): {exc}") from exc
    except BaseException:
        _undo(placed, mode)
        raise
    return TransferReport(
        "import",
        tuple(s.source for s, _ in placed),
        tuple(skipped),
        failed,
        bytes_transferred=sum(s.size for s, _ in placed),
    )


def delete_rows(
    conn: sqlite3.Connection, level: Level, column: str, uid: str
) -> tuple[int, list[Path]]:
    """Delete the instances under ``uid`` and empty parents; return count and owned files."""
    rows = conn.execute(
        "SELECT i.sop_uid, i.path, i.owned FROM instances i JOIN series se"
        f" ON se.series_uid = i.series_uid WHERE {column} = ?",
        (uid,),
    ).fetchall()
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany("DELETE FROM instances WHERE sop_uid = ?", [(r[0],) for r in rows])
        if level is Level.STUDY:
            conn.execute("DELETE FROM studies WHERE study_uid = ?", (uid,))
        elif level is Level.SERIES:
            conn.execute("DELETE FROM series WHERE series_uid = ?", (uid,))
        conn.execute(
            "DELETE FROM series WHERE series_uid NOT IN (SELECT DISTINCT series_uid FROM instances)"
        )
        conn.execute(
            "DELETE FROM studies WHERE study_uid NOT IN (SELECT DISTINCT study_uid FROM series)"
        )
        conn.execute(
            "DELETE FROM patients WHERE patient_key NOT IN"
            " (SELECT DISTINCT patient_key FROM studies)"
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(rows), [Path(r[1]) for r in rows if r[2]]
