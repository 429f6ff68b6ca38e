"""What killed processes leave behind is settled on open: indexed when complete, else removed.

Attack (issue 10, item 2): complete files a killed listener left in ``incoming/``
were deleted when the database next opened instead of indexed. Also covered: a
writer killed between moving files and committing, and a delete killed midway,
leave neither files without rows nor rows without files.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dicomstation import Database, Level, Query
from tests.security.db_support import audit, env
from tests.synth import write_ct_series

TIMEOUT = 120


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _run_killed(script: str, *args: str) -> None:
    """Run a child that ends by SIGKILL (itself or from us) and check it did."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env(),
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


# A listener's way of receiving (see nodes/dimse_receive.py): write "<name>.part",
# fsync, rename to ".dcm", then index in batches. Killed before it indexes anything.
_LISTENER = """
import os, signal, sys
from pathlib import Path
from dicomstation import Database
db = Database.open(sys.argv[1])
folder = db.staging_dir("recv")
for index, source in enumerate(sys.argv[2:]):
    part = folder / f"{index}.part"
    with open(part, "wb") as handle:
        handle.write(Path(source).read_bytes())
        handle.flush()
        os.fsync(handle.fileno())
    if index < len(sys.argv) - 3:  # the last one stays a .part: killed while writing it
        os.replace(part, part.with_suffix(".dcm"))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_listener_files_are_indexed_on_open(tmp_path: Path) -> None:
    sources = write_ct_series(tmp_path / "src", 6, size=32)
    db = tmp_path / "db"
    _run_killed(_LISTENER, str(db), *map(str, sources))
    leftovers = list((db / "incoming").glob("recv.*/*"))
    assert sorted(p.suffix for p in leftovers) == [".dcm"] * 5 + [".part"]
    with Database.open(db) as database:
        assert len(database.find(Query(Level.IMAGE))) == 5, "complete files are indexed"
    assert not list((db / "incoming").iterdir()), "the partial file is removed"
    found = audit(db)
    assert found.rows == 5 and found.missing == () and found.orphans == ()


def test_truncated_and_partial_leftovers_are_removed_live_ones_kept(tmp_path: Path) -> None:
    sources = write_ct_series(tmp_path / "src", 3, size=32)
    db = tmp_path / "db"
    Database.open(db).close()
    dead = db / "incoming" / f"recv.{_dead_pid()}.feed"
    dead.mkdir()
    (dead / "good.dcm").write_bytes(sources[0].read_bytes())
    (dead / "cut.dcm").write_bytes(sources[1].read_bytes()[:-100])  # renamed too early
    (dead / "busy.part").write_bytes(sources[2].read_bytes())
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = db / "incoming" / f"recv.{sleeper.pid}.beef"
        live.mkdir()
        (live / "inflight.dcm").write_bytes(sources[2].read_bytes())
        with Database.open(db) as database:
            refs = database.find(Query(Level.IMAGE))
            assert [r.sop_instance_uid for r in refs] == [sources[0].stem]
        assert sorted(p.name for p in (db / "incoming").iterdir()) == [live.name]
        assert (live / "inflight.dcm").is_file(), "a running listener keeps its files"
    finally:
        sleeper.kill()
        sleeper.wait()
    found = audit(db)
    assert found.rows == 1 and found.orphans == ()


def test_processes_opening_at_once_index_leftovers_once(tmp_path: Path) -> None:
    sources = write_ct_series(tmp_path / "src", 30, size=16)
    db = tmp_path / "db"
    Database.open(db).close()
    for n in range(3):
        dead = db / "incoming" / f"recv.{_dead_pid()}.{n}"
        dead.mkdir()
        for source in sources[n * 10 : n * 10 + 10]:
            (dead / source.name).write_bytes(source.read_bytes())
    opener = "import sys; from dicomstation import Database; Database.open(sys.argv[1]).close()"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", opener, str(db)], stderr=subprocess.PIPE, text=True, env=env()
        )
        for _ in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err
    found = audit(db)
    assert found.rows == 30 and found.missing == () and found.orphans == ()
    assert not list((db / "incoming").iterdir())


# Fault injection of our own: the writer is killed after its files are in place
# and before the rows are committed (or, for a delete, after the files went to the
# trash folder and before the commit).
_KILLED_WRITER = """
import os, signal, sys
from dicomstation import Database
from dicomstation.database import ingest

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

mode, root, source = sys.argv[1:]
db = Database.open(root)
if mode == "copy":
    ingest._rows = die
    db.import_path(source, workers=1)
elif mode == "move":
    folder = db.staging_dir("recv")
    files = []
    for name in sorted(os.listdir(source)):
        target = folder / name
        target.write_bytes(open(os.path.join(source, name), "rb").read())
        files.append(target)
    ingest._rows = die
    db.add_files(files, move=True)
else:
    real = ingest._to_trash
    ingest._to_trash = lambda moves: (real(moves), die())
    db.delete(mode)
"""


@pytest.mark.parametrize("mode", ["copy", "move"])
def test_writer_killed_before_commit_leaves_no_orphan(tmp_path: Path, mode: str) -> None:
    sources = write_ct_series(tmp_path / "src", 8, size=16)
    db = tmp_path / "db"
    _run_killed(_KILLED_WRITER, mode, str(db), str(tmp_path / "src"))
    placed = list((db / "files").rglob("*.dcm"))
    assert len(placed) == 8, "the kill lands after the files were placed"
    with Database.open(db) as database:
        found = audit(db)
        assert found.orphans == () and found.missing == ()
        if mode == "move":  # given back to the listener's folder, then indexed from there
            assert found.rows == 8
        else:
            assert found.rows == 0
            report = database.import_path(tmp_path / "src", workers=1)
            assert len(report.succeeded) == len(sources)
    assert not list((db / "incoming").iterdir())


def test_delete_killed_before_commit_keeps_files(tmp_path: Path) -> None:
    sources = write_ct_series(tmp_path / "src", 5, size=16)
    db = tmp_path / "db"
    with Database.open(db) as database:
        database.import_path(tmp_path / "src", workers=1)
        series = database.find(Query(Level.SERIES))[0].series_uid
    _run_killed(_KILLED_WRITER, series, str(db), "-")
    assert len(list((db / "files").rglob("*.dcm"))) == 0, "the kill lands after the moves"
    with Database.open(db) as database:
        found = audit(db)
        assert found.rows == len(sources) and found.missing == () and found.orphans == ()
        assert database.delete(series) == len(sources)
    found = audit(db)
    assert found.rows == 0 and found.orphans == ()
    assert not list((db / "files").iterdir()), "emptied folders are removed"
