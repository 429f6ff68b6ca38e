"""The SQLite schema of the local database, versioned with ``PRAGMA user_version``.

One row per patient, study, series and instance, with the display fields a
study browser shows, plus per instance the file path, size, transfer syntax and
a cached DICOM JSON header (filled on first metadata request, no bulk data).
A new schema version adds a step to :data:`MIGRATIONS`; opening an older
database runs the missing steps in one transaction.

Several processes may open (and create) one database at once: the version is
read again inside a ``BEGIN IMMEDIATE`` transaction (which waits for the write
lock up to the busy timeout), so exactly one of them runs each migration.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dicomstation.database.private import touch_private
from dicomstation.database.wal import connect_wal
from dicomstation.errors import DatabaseError

__all__ = ["BUSY_TIMEOUT", "SCHEMA_VERSION", "connect", "migrate"]

BUSY_TIMEOUT = 60.0  # seconds a writer waits for another process's transaction

_V1 = """
CREATE TABLE patients (
    patient_key   INTEGER PRIMARY KEY,
    patient_id    TEXT NOT NULL DEFAULT '',
    patient_name  TEXT NOT NULL DEFAULT '',
    birth_date    TEXT NOT NULL DEFAULT '',
    sex           TEXT NOT NULL DEFAULT '',
    UNIQUE (patient_id, patient_name, birth_date)
);
CREATE TABLE studies (
    study_uid          TEXT PRIMARY KEY,
    patient_key        INTEGER NOT NULL REFERENCES patients ON DELETE CASCADE,
    study_date         TEXT NOT NULL DEFAULT '',
    study_time         TEXT NOT NULL DEFAULT '',
    accession_number   TEXT NOT NULL DEFAULT '',
    description        TEXT NOT NULL DEFAULT '',
    referring_physician TEXT NOT NULL DEFAULT '',
    study_id           TEXT NOT NULL DEFAULT '',
    inserted_at        REAL NOT NULL
);
CREATE INDEX studies_patient ON studies (patient_key);
CREATE INDEX studies_date ON studies (study_date);
CREATE TABLE series (
    series_uid     TEXT PRIMARY KEY,
    study_uid      TEXT NOT NULL REFERENCES studies ON DELETE CASCADE,
    modality       TEXT NOT NULL DEFAULT '',
    series_number  INTEGER,
    description    TEXT NOT NULL DEFAULT '',
    body_part      TEXT NOT NULL DEFAULT '',
    series_date    TEXT NOT NULL DEFAULT '',
    frame_of_reference_uid TEXT NOT NULL DEFAULT ''
);
CREATE INDEX series_study ON series (study_uid);
CREATE TABLE instances (
    sop_uid          TEXT PRIMARY KEY,
    series_uid       TEXT NOT NULL REFERENCES series ON DELETE CASCADE,
    sop_class_uid    TEXT NOT NULL DEFAULT '',
    instance_number  INTEGER,
    number_of_frames INTEGER,
    rows             INTEGER,
    columns          INTEGER,
    path             TEXT NOT NULL,
    size             INTEGER NOT NULL,
    transfer_syntax  TEXT NOT NULL DEFAULT '',
    owned            INTEGER NOT NULL,
    header_json      TEXT
);
CREATE INDEX instances_series ON instances (series_uid);
"""


def _full_name(tag: str, alias: str) -> str:
    """SQL: the ``A=I=P`` person name (trailing ``=`` dropped) of ``tag`` in header ``alias``."""
    groups = " || '=' || ".join(
        f"coalesce(json_extract({alias}, '$.\"{tag}\".Value[0].{group}'), '')"
        for group in ("Alphabetic", "Ideographic", "Phonetic")
    )
    return f"rtrim({groups}, '=')"


def _alphabetic(tag: str, alias: str) -> str:
    return f"coalesce(json_extract({alias}, '$.\"{tag}\".Value[0].Alphabetic'), '')"


_FIRST_HEADER = (
    "SELECT i.header_json AS h FROM series se JOIN instances i ON i.series_uid = se.series_uid"
    " WHERE se.study_uid = {study} AND json_valid(i.header_json) LIMIT 1"
)
# Version 2: person names were indexed with the alphabetic group only; complete them from
# the first cached header of each patient's (study's) instances, where one is cached and
# its alphabetic group is the stored name (one valid cached header read per name; others are
# completed by the next import of one of their instances, see ingest._patient_key).
_PATIENT_STUDY = (
    "(SELECT st.study_uid FROM studies st WHERE st.patient_key = patients.patient_key LIMIT 1)"
)
_V2 = f"""
UPDATE OR IGNORE patients SET patient_name = coalesce((
    SELECT {_full_name("00100010", "h")} FROM ({_FIRST_HEADER.format(study=_PATIENT_STUDY)})
    WHERE {_alphabetic("00100010", "h")} = patients.patient_name
), patient_name) WHERE instr(patient_name, '=') = 0;
UPDATE studies SET referring_physician = coalesce((
    SELECT {_full_name("00080090", "h")} FROM ({_FIRST_HEADER.format(study="studies.study_uid")})
    WHERE {_alphabetic("00080090", "h")} = studies.referring_physician
), referring_physician) WHERE instr(referring_physician, '=') = 0;
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the schema of ``conn`` to :data:`SCHEMA_VERSION`.

    Raises
    ------
    DatabaseError
        If the file was written by a newer dicomstation.
    """
    if _version(conn, path) == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _version(conn, path)  # another process may have migrated meanwhile
        if version < SCHEMA_VERSION:
            # statement by statement: executescript would COMMIT the open transaction
            for statement in "".join(MIGRATIONS[version:]).split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _version(conn: sqlite3.Connection, path: str) -> int:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise DatabaseError(
            f"{path}: schema version {version} is newer than this dicomstation ({SCHEMA_VERSION})"
        )
    return version


def connect(index: Path) -> sqlite3.Connection:
    """Open (creating with mode 0600) the index file and bring its schema up to date.

    The ``-wal`` and ``-shm`` files SQLite makes next to it take the index's mode.
    Errors are raised as they come (``sqlite3.Error``, ``OSError``, :class:`DatabaseError`).
    """
    touch_private(index)
    conn = connect_wal(index, timeout=BUSY_TIMEOUT, check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn, str(index.parent))
    except BaseException:
        conn.close()
        raise
    return conn
