"""Kill the driver (`dicomstation run` in a subprocess) mid-run; the rerun does only the rest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w

from dicomstation.pipeline import LEDGER_NAME, Ledger, Pipeline, RunOptions, StepState
from tests.peers import OrthancServer
from tests.pipeline.conftest import make_cohort, orthanc_series, pipeline_table, settings_for

COUNT = 8


def _start(tmp_path: Path, orthanc: OrthancServer) -> tuple[subprocess.Popen[bytes], Path]:
    """Write the pipeline file and settings; start `dicomstation run` on them."""
    table = pipeline_table(concurrency=1)
    path = tmp_path / "cohort.toml"
    path.write_bytes(tomli_w.dumps(table).encode())
    config = tmp_path / "settings.toml"
    settings_for(orthanc).save(config)
    env = dict(os.environ, DICOMSTATION_CONFIG=str(config))
    command = [sys.executable, "-m", "dicomstation.cli.main", "run", str(path)]
    command += ["--db", str(tmp_path / "db"), "--json"]
    # A shell without job control starts background jobs with SIGINT ignored, and a child
    # inherits that (Python then keeps it ignored): give the driver Ctrl-C's default
    # action, as in a terminal. Handlers (unlike SIG_IGN) are reset to SIG_DFL by exec.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    finally:
        signal.signal(signal.SIGINT, previous)
    return process, path


def _wait_for_done(ledger_path: Path, job_id: str, count: int, timeout: float = 120) -> None:
    """Wait until the ledger records ``count`` done items (the subprocess is writing it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ledger_path.exists():
            with Ledger.open(ledger_path) as ledger:
                done = [j for j in ledger.jobs() if j.job_id == job_id]
                if done and done[0].counts.get("done", 0) >= count:
                    return
        time.sleep(0.1)
    raise AssertionError(f"the driver did not finish {count} items within {timeout}s")


def _done_items(ledger_path: Path, job_id: str) -> dict[str, int]:
    with Ledger.open(ledger_path) as ledger:
        return {i.item.key: i.attempts for i in ledger.items(job_id) if i.state is StepState.DONE}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_driver_rerun_runs_only_the_rest(
    clean_orthanc: OrthancServer, tmp_path: Path, sig: signal.Signals
) -> None:
    cohort = make_cohort(clean_orthanc, tmp_path / "cohort", COUNT)
    process, path = _start(tmp_path, clean_orthanc)
    pipeline = Pipeline.from_file(path)
    ledger_path = tmp_path / "db" / LEDGER_NAME
    try:
        _wait_for_done(ledger_path, pipeline.job_id, 2)
        process.send_signal(sig)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if sig == signal.SIGINT:
        assert code == 130, process.stderr.read() if process.stderr else ""
        with Ledger.open(ledger_path) as ledger:  # stopped cleanly: nothing left running
            states = {i.state for i in ledger.items(pipeline.job_id)}
            assert StepState.RUNNING not in states
    before = _done_items(ledger_path, pipeline.job_id)
    assert 2 <= len(before) < COUNT

    options = RunOptions(
        database=tmp_path / "db", servers={"pacs": settings_for(clean_orthanc).server("pacs")}
    )
    report = pipeline.run(options)
    assert report.failed == {}
    assert report.already_done == len(before)
    assert report.done == COUNT - len(before)
    after = _done_items(ledger_path, pipeline.job_id)
    assert set(after) == set(cohort.studies)
    assert {key: after[key] for key in before} == before  # done items were not run again
    segs = orthanc_series(clean_orthanc, "SEG")
    assert len(segs) == COUNT and set(segs.values()) == {1}
    assert len(orthanc_series(clean_orthanc, "SR")) == COUNT
