"""The rows of one batch of instances: patients, studies, series and instances.

Used inside the write transactions of :mod:`.ingest`.
"""

from __future__ import annotations

import sqlite3
import time

from dicomstation.database.importer import Scanned

__all__ = ["Rows"]


def _patient_key(conn: sqlite3.Connection, pid: str, name: str, birth: str) -> int | None:
    """The patient row of (ID, name, birth date), None when there is none.

    Databases written before person names kept every group (``A=I=P``) hold the
    alphabetic group only: such a row is the same patient; its name is completed
    here rather than a second patient row made (issue 12).
    """
    alphabetic = name.split("=")[0]
    row = conn.execute(
        "SELECT patient_key, patient_name FROM patients WHERE patient_id = ? AND birth_date = ?"
        " AND patient_name IN (?, ?) ORDER BY patient_name = ? DESC LIMIT 1",
        (pid, birth, name, alphabetic, name),
    ).fetchone()
    if row is None:
        return None
    if row[1] != name:
        conn.execute("UPDATE patients SET patient_name = ? WHERE patient_key = ?", (name, row[0]))
    return int(row[0])


def _patient_row(conn: sqlite3.Connection, f: dict[str, object]) -> int | None:
    g = f.get
    pid, name, birth = (str(g(k, "")) for k in ("PatientID", "PatientName", "PatientBirthDate"))
    key = _patient_key(conn, pid, name, birth)
    if key is None:
        conn.execute(
            "INSERT INTO patients (patient_id, patient_name, birth_date, sex) VALUES (?, ?, ?, ?)",
            (
                g("PatientID", ""),
                g("PatientName", ""),
                g("PatientBirthDate", ""),
                g("PatientSex", ""),
            ),
        )
        key = _patient_key(conn, pid, name, birth)
    return key


class Rows:
    """The rows of one batch, inside its transaction.

    A series' instances usually share one patient, study and series: those rows
    are looked up or inserted once per batch (``INSERT OR IGNORE`` of a row this
    transaction already wrote is a no-op, so skipping it changes nothing), and
    the instance rows go in with one ``executemany``.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._patients: dict[tuple[object, ...], int | None] = {}
        self._studies: set[object] = set()
        self._series: set[object] = set()
        self._instances: list[tuple[object, ...]] = []

    def add(self, item: Scanned, path: str, owned: bool) -> None:
        """Gather the rows of one placed file (``owned``: the database may delete it)."""
        f = item.fields
        assert f is not None
        g = f.get
        if f["StudyInstanceUID"] not in self._studies:
            self._study(f)
        if f["SeriesInstanceUID"] not in self._series:
            self._series.add(f["SeriesInstanceUID"])
            self.conn.execute(
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
        self._instances.append(
            (
                f["SOPInstanceUID"],
                f["SeriesInstanceUID"],
                f["SOPClassUID"],
                g("InstanceNumber"),
                g("NumberOfFrames"),
                g("Rows"),
                g("Columns"),
                path,
                item.size,
                item.transfer_syntax,
                1 if owned else 0,
            )
        )

    def _study(self, f: dict[str, object]) -> None:
        g = f.get
        who = (g("PatientID", ""), g("PatientName", ""), g("PatientBirthDate", ""))
        if who not in self._patients:
            self._patients[who] = _patient_row(self.conn, f)
        self._studies.add(f["StudyInstanceUID"])
        self.conn.execute(
            "INSERT OR IGNORE INTO studies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                f["StudyInstanceUID"],
                self._patients[who],
                g("StudyDate", ""),
                g("StudyTime", ""),
                g("AccessionNumber", ""),
                g("StudyDescription", ""),
                g("ReferringPhysicianName", ""),
                g("StudyID", ""),
                time.time(),
            ),
        )

    def insert(self) -> None:
        """Insert the instance rows gathered by :meth:`add`."""
        self.conn.executemany(
            "INSERT INTO instances VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)", self._instances
        )
