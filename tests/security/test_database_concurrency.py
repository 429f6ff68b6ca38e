"""Many processes writing one database at once: the index and the files stay in step.

Attack (issue 10, item 3): two ``db import`` runs on overlapping inputs made one abort
with ``UNIQUE constraint failed`` and its undo delete files the other had committed;
two processes opening a new database raced on ``CREATE TABLE``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from dicomstation import Database, Level, Query
from tests.security.db_support import (
    CHURN_WRITER,
    PYTHON_WRITER,
    RECEIVER_WRITER,
    Audit,
    audit,
    env,
    release,
    start_cli_import,
    start_python_writer,
)
from tests.synth import write_ct_series

ROUNDS = 3
SERIES = 3
SLICES = 40
TIMEOUT = 240


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three small CT series, one folder each."""
    base = tmp_path_factory.mktemp("inputs")
    folders = [base / f"s{i}" for i in range(SERIES)]
    for folder in folders:
        write_ct_series(folder, SLICES, size=32)
    return folders


def _finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, f"writer failed ({proc.returncode}): {err.strip()[-2000:]}"
    return out


def _counts(out: str, cli: bool) -> tuple[int, int]:
    """(imported, already present) from a writer's output; no file may have failed."""
    if cli:
        answer = json.loads(out)
        assert answer["failed"] == {}, answer["failed"]
        return answer["imported"], answer["skipped"]
    lines = [tuple(map(int, line.split())) for line in out.strip().splitlines()]
    assert all(line[2] == 0 for line in lines), out
    return sum(line[0] for line in lines), sum(line[1] for line in lines)


def _check_consistent(db: Path) -> Audit:
    found = audit(db)
    assert found.missing == (), "rows point to missing files"
    assert found.orphans == (), "files without a row"
    return found


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_four_writers_on_overlapping_inputs(
    tmp_path: Path, inputs: list[Path], round_: int
) -> None:
    db = tmp_path / "db"
    if round_:  # round 0: the writers also race on creating the database
        Database.open(db).close()
    a, b, c = inputs
    # the order differs per round so different writers meet on different series
    order = [inputs[(i + round_) % SERIES] for i in range(SERIES)]
    procs = [
        start_cli_import(db, a, b, c),
        start_cli_import(db, *reversed(order)),
        start_python_writer(db, *order),
        # a listener's hand-over (files moved in from its staging) or a plain import
        start_python_writer(db, c, a, script=RECEIVER_WRITER if round_ else PYTHON_WRITER),
    ]
    release(procs)
    expected = [3 * SLICES, 3 * SLICES, 3 * SLICES, 2 * SLICES]
    imported = 0
    for index, (proc, total) in enumerate(zip(procs, expected, strict=True)):
        counts = _counts(_finish(proc), cli=index < 2)
        assert sum(counts) == total, f"writer {index}: {counts} of {total}"
        imported += counts[0]
    assert imported == SERIES * SLICES, "each instance is imported exactly once"
    assert _check_consistent(db).rows == SERIES * SLICES
    with Database.open(db) as database:
        assert len(database.find(Query(Level.SERIES))) == SERIES
        for folder in inputs:
            report = database.import_path(folder, workers=1)
            assert len(report.skipped) == SLICES, "a re-import finds everything present"
        for ref in database.find(Query(Level.SERIES)):
            assert len(database.series_files(ref.series_uid)) == SLICES
    assert not list((db / "incoming").iterdir()), "no staging left behind"


def test_writers_beside_a_process_deleting_what_they_import(
    tmp_path: Path, inputs: list[Path]
) -> None:
    """Deletes move files away inside their transaction: never another writer's file."""
    churned = tmp_path / "churned"
    study = generate_uid()
    write_ct_series(churned, SLICES, size=32, study_uid=study)
    db = tmp_path / "db"
    Database.open(db).close()
    a, b, c = inputs
    procs = [
        start_python_writer(db, churned, 4, study, script=CHURN_WRITER),
        start_cli_import(db, a, churned, b, c),
        start_python_writer(db, churned, c, a, script=RECEIVER_WRITER),
        start_python_writer(db, b, churned, a),
    ]
    release(procs)
    for index, proc in enumerate(procs):
        out = _finish(proc)
        if index:
            _counts(out, cli=index == 1)
    found = _check_consistent(db)
    assert SERIES * SLICES <= found.rows <= (SERIES + 1) * SLICES
    with Database.open(db) as database:
        for folder in inputs:  # the other series are whole
            report = database.import_path(folder, workers=1)
            assert len(report.skipped) == SLICES


_OPENER = """
import sys
from dicomstation import Database
sys.stdin.readline()  # start together
Database.open(sys.argv[1]).close()
"""


def test_processes_creating_one_database_at_once(tmp_path: Path) -> None:
    for attempt in range(3):
        db = tmp_path / f"db{attempt}"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _OPENER, str(db)],
                stdin=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env(),
            )
            for _ in range(4)
        ]
        for proc in procs:  # every child is past its imports once it reads the line
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            _, err = proc.communicate(timeout=TIMEOUT)
            assert proc.returncode == 0, err.strip().splitlines()[-1:]
        found = audit(db)
        assert found.rows == 0
