"""Processes opening a new SQLite store at the same moment all get it open.

CI failure (session 5): four ``db import`` runs on a database none had made yet; one
failed at once with ``database is locked`` on ``PRAGMA journal_mode=WAL``. Two
connections that both hold a shared lock and both ask for the exclusive one the switch
to WAL needs are a deadlock, and SQLite answers one of them SQLITE_BUSY without calling
its busy handler (the busy timeout does not help). Every store of ours that switches a
file to WAL is opened here by several processes at once, round after round.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.security.db_support import env

PROCESSES = 6
ROUNDS = 8  # one round in two failed before the fix, on this 2-core machine
TIMEOUT = 120

# Opens the store named on argv[1] at each path read from stdin; answers one line each.
OPENER = """
import sys
from pathlib import Path
kind = sys.argv[1]
if kind == "database":
    from dicomstation import Database
    def open_(p): Database.open(p).close()
elif kind == "job-ledger":
    from dicomstation.pipeline.ledger import Ledger
    def open_(p): Ledger.open(p / "jobs.sqlite").close()
elif kind == "deid-ledger":
    from dicomstation.deid.ledger import Ledger
    def open_(p): Ledger(p / "reid.sqlite").close()
else:
    from dicomstation.server.ups_store import UpsStore
    def open_(p): UpsStore(p / "ups.sqlite")
print("ready", flush=True)
for line in sys.stdin:
    try:
        open_(Path(line.strip()))
        print("ok", flush=True)
    except Exception as exc:
        print("failed:", type(exc).__name__, str(exc).replace("\\n", " "), flush=True)
"""


def _openers(kind: str) -> list[subprocess.Popen[str]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env(),
        )
        for _ in range(PROCESSES)
    ]
    for proc in procs:  # every one has imported what it needs: the opens start together
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    return procs


def _round(procs: list[subprocess.Popen[str]], folder: Path) -> list[str]:
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(f"{folder}\n")
        proc.stdin.flush()
    answers = []
    for proc in procs:
        assert proc.stdout is not None
        answers.append(proc.stdout.readline().strip())
    return answers


@pytest.mark.parametrize("kind", ["database", "job-ledger", "deid-ledger", "ups-store"])
def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path: Path, kind: str) -> None:
    procs = _openers(kind)
    try:
        failures = []
        for round_ in range(ROUNDS):
            folder = tmp_path / f"round{round_}"
            folder.mkdir()
            failures += [a for a in _round(procs, folder) if a != "ok"]
        opens = ROUNDS * PROCESSES
        assert failures == [], f"{len(failures)} of {opens} opens failed: {failures[0]}"
    finally:
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in procs:
            proc.wait(timeout=TIMEOUT)
