"""One driver per job: a second run of a job that is running is refused, not run twice.

"Segment each new study as it arrives" runs from cron; a run that outlasts the interval
must not be started again beside itself: both would run every item, and the second
would put the first one's running items back to pending in the ledger.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dicomstation.database import Database
from dicomstation.errors import JobRunningError
from dicomstation.pipeline import Ledger, Pipeline, RunOptions, RunReport, RunStatus
from tests.synth import write_ct_series

PIPELINE = {
    "name": "one driver",
    "source": {"kind": "local", "level": "study"},
    "steps": [{"kind": "load"}],
}


def _database(tmp_path: Path, studies: int) -> Path:
    db = tmp_path / "db"
    with Database.open(db) as opened:
        for n in range(studies):
            opened.import_path(write_ct_series(tmp_path / f"in{n}", 3, size=8), workers=1)
    return db


def test_a_second_driver_of_a_running_job_is_refused(tmp_path: Path) -> None:
    db = _database(tmp_path, 2)
    pipeline = Pipeline.from_dict(PIPELINE)
    started, release = threading.Event(), threading.Event()

    def hold(status: RunStatus) -> None:  # the first driver stops inside its run until told
        if status.running and not started.is_set():
            started.set()
            release.wait(timeout=60)

    first: list[RunReport] = []
    runner = threading.Thread(
        target=lambda: first.append(pipeline.run(RunOptions(database=db, progress=hold)))
    )
    runner.start()
    try:
        assert started.wait(timeout=60)
        with pytest.raises(JobRunningError, match=pipeline.job_id):
            pipeline.run(RunOptions(database=db))
        cli = subprocess.run(
            [sys.executable, "-m", "dicomstation.cli.main", "run", str(_file(tmp_path)),
             "--db", str(db)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert cli.returncode == 3 and "already being run" in cli.stderr, cli.stderr
        with Ledger.open(db / "jobs.sqlite") as ledger:
            assert ledger.job(pipeline.job_id).counts.get("running", 0) >= 1  # left alone
    finally:
        release.set()
        runner.join(timeout=120)
    assert first and (first[0].done, first[0].failed) == (2, {})
    again = pipeline.run(RunOptions(database=db))  # the lock went with the first driver
    assert again.already_done == 2


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "one.toml"
    path.write_text(
        'name = "one driver"\n[source]\nkind = "local"\nlevel = "study"\n'
        '[[steps]]\nkind = "load"\n'
    )
    return path
