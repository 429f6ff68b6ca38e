"""The SQLite schema of the local database, versioned with ``PRAGMA user_version``.

One row per patient, study, series and instance, with the display fields a
study browser shows, plus per instance the file path, size, transfer syntax and
a cached DICOM JSON header (filled on first metadata request, no bulk data).
A new schema version adds a step to :data:`MIGRATIONS`; opening an older
database runs the missing steps in one transaction.
"""

from __future__ import annotations

import sqlite3

from dicomstation.errors import DatabaseError

__all__ = ["SCHEMA_VERSION", "migrate"]

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

MIGRATIONS: tuple[str, ...] = (_V1,)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the schema of ``conn`` to :data:`SCHEMA_VERSION`.

    Raises
    ------
    DatabaseError
        If the file was written by a newer dicomstation.
    """
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise DatabaseError(
            f"{path}: schema version {version} is newer than this dicomstation ({SCHEMA_VERSION})"
        )
    if version == SCHEMA_VERSION:
        return
    script = "".join(MIGRATIONS[version:])
    conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;")
