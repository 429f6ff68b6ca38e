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

from dicomstation import Database, Level, Query
from tests.security.db_support import audit, env, release, start_cli_import, start_python_writer
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
        start_python_writer(db, c, a),
    ]
    release(procs)
    expected = [3 * SLICES, 3 * SLICES, 3 * SLICES, 2 * SLICES]
    outputs = [_finish(p) for p in procs]
    imported = 0
    for index, (out, total) in enumerate(zip(outputs, expected, strict=True)):
        if index < 2:
            answer = json.loads(out)
            assert answer["failed"] == {}, answer["failed"]
            counts = (answer["imported"], answer["skipped"])
        else:
            lines = [tuple(map(int, line.split())) for line in out.strip().splitlines()]
            assert all(line[2] == 0 for line in lines), out
            counts = (sum(line[0] for line in lines), sum(line[1] for line in lines))
        assert sum(counts) == total, f"writer {index}: {counts} of {total}"
        imported += counts[0]
    assert imported == SERIES * SLICES, "each instance is imported exactly once"
    found = audit(db)
    assert found.missing == (), "rows point to missing files"
    assert found.orphans == (), "files without a row"
    assert found.rows == SERIES * SLICES
    with Database.open(db) as database:
        assert len(database.find(Query(Level.SERIES))) == SERIES
        for folder in inputs:
            report = database.import_path(folder, workers=1)
            assert len(report.skipped) == SLICES, "a re-import finds everything present"
        for ref in database.find(Query(Level.SERIES)):
            assert len(database.series_files(ref.series_uid)) == SLICES


_OPENER = """
import sys
from dicomstation import Database
sys.stdin.readline()  # start together
Database.open(sys.argv[1]).close()
"""


def test_processes_creating_one_database_at_once(tmp_path: Path) -> None:
    for attempt in range(5):
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
