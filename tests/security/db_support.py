"""Helpers for the database safety tests: writer processes and an index/disk audit."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A Python writer: imports its folders one by one (several transactions, interleaved
# with the other writers), like a pipeline worker adding results to the database.
PYTHON_WRITER = """
import sys
from dicomstation import Database
sys.stdin.readline()  # start together (see release)
with Database.open(sys.argv[1]) as db:
    for folder in sys.argv[2:]:
        report = db.import_path(folder, workers=1)
        print(len(report.succeeded), len(report.skipped), len(report.failed), flush=True)
"""

# A listener-like writer: files land in its "recv" staging folder and are handed over
# with add_files(move=True) in batches, as nodes/dimse_receive.py does.
RECEIVER_WRITER = """
import os, sys
from dicomstation import Database
sys.stdin.readline()
with Database.open(sys.argv[1]) as db:
    folder = db.staging_dir("recv")
    for source in sys.argv[2:]:
        names = sorted(os.listdir(source))
        for start in range(0, len(names), 16):
            batch = []
            for name in names[start : start + 16]:
                target = folder / (name + ".dcm")
                with open(os.path.join(source, name), "rb") as handle:
                    target.write_bytes(handle.read())
                batch.append(target)
            report = db.add_files(batch, move=True)
            print(len(report.succeeded), len(report.skipped), len(report.failed), flush=True)
    assert not list(folder.iterdir()), "every received file was moved in or dropped"
"""

# Imports a folder and deletes what it holds, again and again, while others write.
CHURN_WRITER = """
import sys
from dicomstation import Database, Level, Query
sys.stdin.readline()
with Database.open(sys.argv[1]) as db:
    for _ in range(int(sys.argv[3])):
        db.import_path(sys.argv[2], workers=1)
        for ref in db.find(Query(Level.STUDY)):
            if ref.study_uid == sys.argv[4]:
                db.delete(ref.study_uid)
"""


def env() -> dict[str, str]:
    """Environment for child processes: the repository on the path."""
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path))


def cli(*args: str) -> list[str]:
    """Command line of ``dicomstation <args>`` run by this interpreter."""
    return [sys.executable, "-m", "dicomstation.cli.main", *args]


# The CLI itself, entered once a line arrives on stdin (modules are imported by then).
CLI_AFTER_GO = """
import sys
from dicomstation.cli.main import app
sys.stdin.readline()
app(sys.argv[1:], prog_name="dicomstation")
"""


def start_cli_import(db: Path, *sources: Path) -> subprocess.Popen[str]:
    """Start ``dicomstation db import --json --db <db> <sources>`` (waits for :func:`release`)."""
    args = ["db", "import", "--json", "--db", str(db), *map(str, sources)]
    return subprocess.Popen(
        [sys.executable, "-c", CLI_AFTER_GO, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )


def start_python_writer(
    db: Path, *sources: object, script: str = PYTHON_WRITER
) -> subprocess.Popen[str]:
    """Start a Python writer of ``sources`` (default: imports them; waits for :func:`release`)."""
    return subprocess.Popen(
        [sys.executable, "-c", script, str(db), *map(str, sources)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )


def release(procs: list[subprocess.Popen[str]]) -> None:
    """Let processes started by this module begin their work, all at once."""
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()


@dataclass(frozen=True)
class Audit:
    """What the index and the ``files/`` folder hold."""

    rows: int
    missing: tuple[str, ...]  # rows whose file is gone
    orphans: tuple[str, ...]  # files under files/ without a row
    uids: frozenset[str]


def audit(db: Path) -> Audit:
    """Compare the index of the database folder ``db`` with the files on disk."""
    conn = sqlite3.connect(db / "index.sqlite")
    try:
        rows = conn.execute("SELECT sop_uid, path, owned FROM instances").fetchall()
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert not conn.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        conn.close()
    paths = {os.path.realpath(r[1]) for r in rows}
    missing = tuple(r[1] for r in rows if not os.path.isfile(r[1]))
    on_disk = {
        os.path.realpath(os.path.join(folder, name))
        for folder, _, names in os.walk(db / "files")
        for name in names
    }
    orphans = tuple(sorted(on_disk - paths))
    return Audit(len(rows), missing, orphans, frozenset(r[0] for r in rows))


def file_mode(path: Path) -> int:
    """Permission bits of ``path``."""
    return path.stat().st_mode & 0o777


def mount_tmpfs(path: Path, size: str) -> bool:
    """Mount a tmpfs of ``size`` (e.g. ``"4m"``) on the folder ``path``; False if not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def resize_tmpfs(path: Path, size: str) -> None:
    """Change the size of the tmpfs mounted on ``path``."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def unmount(path: Path) -> None:
    """Unmount ``path`` (lazily if something still holds it open)."""
    if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until the file system is full; return it."""
    filler = folder / "filler"
    block = b"\0" * 65536
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(block)
        except OSError:
            pass
        try:
            while True:
                handle.write(b"\0" * 512)
        except OSError:
            pass
    return filler
