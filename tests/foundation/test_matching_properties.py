"""Property tests: local DICOM matching equals a direct reading of the standard's rules."""

from __future__ import annotations

import fnmatch
import sqlite3
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from dicomstation.database.importer import Scanned
from dicomstation.database.ingest import Mode, insert_batch
from dicomstation.database.matching import conditions
from dicomstation.database.schema import migrate
from dicomstation.models import Level

DATES = st.dates().map(lambda d: d.strftime("%Y%m%d"))
NAMES = st.text(alphabet="ABCDE^", min_size=1, max_size=6)


def _index(rows: list[tuple[str, str]]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    migrate(conn, ":memory:")
    batch = [
        Scanned(
            f"f{i}",
            {
                "SOPInstanceUID": f"1.{i}",
                "SOPClassUID": "1.2",
                "StudyInstanceUID": f"2.{i}",
                "SeriesInstanceUID": f"3.{i}",
                "PatientName": name,
                "StudyDate": date,
            },
            "1.2.840.10008.1.2.1",
            1,
        )
        for i, (name, date) in enumerate(rows)
    ]
    insert_batch(conn, Path("/nonexistent"), batch, Mode.REFERENCE)
    return conn


def _match(conn: sqlite3.Connection, filters: dict[str, str]) -> set[str]:
    conds = conditions(Level.STUDY, filters)
    where = " AND ".join(c.sql for c in conds) or "1"
    sql = (
        "SELECT st.study_uid FROM studies st JOIN patients p ON p.patient_key = st.patient_key"
        f" WHERE {where}"
    )
    return {r[0] for r in conn.execute(sql, [p for c in conds for p in c.params])}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(NAMES, DATES), min_size=1, max_size=12),
    DATES,
    DATES,
    st.sampled_from(["both", "open_low", "open_high"]),
)
def test_date_ranges(rows: list[tuple[str, str]], a: str, b: str, kind: str) -> None:
    low, high = min(a, b), max(a, b)
    value = {"both": f"{low}-{high}", "open_low": f"-{high}", "open_high": f"{low}-"}[kind]
    conn = _index(rows)
    expected = {
        f"2.{i}"
        for i, (_, date) in enumerate(rows)
        if (kind == "open_low" or date >= low) and (kind == "open_high" or date <= high)
    }
    assert _match(conn, {"StudyDate": value}) == expected


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(NAMES, DATES), min_size=1, max_size=12),
    st.text(alphabet="ABCabc^*?", min_size=1, max_size=5),
)
def test_name_wildcards_case_insensitive(rows: list[tuple[str, str]], pattern: str) -> None:
    conn = _index(rows)
    expected = {
        f"2.{i}"
        for i, (name, _) in enumerate(rows)
        if fnmatch.fnmatchcase(name.upper(), pattern.upper().replace("[", "[[]"))
    }
    if pattern.strip("*") == "":
        expected = {f"2.{i}" for i in range(len(rows))}
    assert _match(conn, {"PatientName": pattern}) == expected
