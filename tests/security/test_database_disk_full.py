"""A full disk (a real small tmpfs): a clear "disk full" error, a consistent database.

Attack (issue 10, item 6): on a full disk the error was "cannot rollback - no
transaction is active" (the real SQLITE_FULL hidden), and a re-import counted files
already present as "not imported".
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomstation import Database
from dicomstation.errors import DiskFullError
from tests.security.db_support import (
    audit,
    cli,
    env,
    fill,
    mount_tmpfs,
    resize_tmpfs,
    unmount,
)
from tests.synth import write_ct_series

SLICES = 120  # about 33 KB each: 4 MB, more than the small file system holds


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs; the test is skipped where mounting is not permitted."""
    mount = tmp_path / "mnt"
    if not mount_tmpfs(mount, "2m"):
        pytest.skip("cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)")
    try:
        yield mount
    finally:
        unmount(mount)


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("src")
    write_ct_series(folder, SLICES, size=128)
    return folder


def _import(db: Path, source: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = cli("db", "import", "--db", str(db), *extra, str(source))
    return subprocess.run(args, capture_output=True, text=True, env=env(), timeout=240, check=False)


def test_cli_import_on_full_disk_then_reimport(small_disk: Path, series: Path) -> None:
    db = small_disk / "db"
    done = _import(db, series)
    assert done.returncode in (1, 3), done.stdout + done.stderr  # partly / nothing done
    message = " ".join(done.stderr.split())
    assert "disk full" in message, message
    assert "cannot rollback" not in message
    assert "Traceback" not in done.stderr
    before = audit(db)
    assert before.missing == () and before.orphans == ()
    assert 0 < before.rows < SLICES, "the disk should fill up midway"
    resize_tmpfs(small_disk, "16m")
    again = _import(db, series, "--json")
    assert again.returncode == 0, again.stderr
    answer = json.loads(again.stdout)
    assert answer["failed"] == {}, "present files are not 'not imported'"
    assert answer["skipped"] == before.rows
    assert answer["imported"] == SLICES - before.rows
    after = audit(db)
    assert after.rows == SLICES and after.missing == () and after.orphans == ()


def test_sqlite_full_is_reported_and_undone(small_disk: Path, series: Path) -> None:
    """Files already on the disk, the index cannot grow: SQLITE_FULL, files given back."""
    with Database.open(small_disk / "db") as db:
        staging = db.staging_dir("recv")
        files = sorted(series.iterdir())[:40]
        received = []
        for source in files:
            target = staging / source.name
            target.write_bytes(source.read_bytes())
            received.append(target)
        reserve = small_disk / "reserve"  # room for the journal, not for the index
        reserve.write_bytes(b"\0" * 16384)
        filler = fill(small_disk)
        reserve.unlink()
        with pytest.raises(DiskFullError, match="disk full") as caught:
            db.add_files(received, move=True)
        assert "cannot rollback" not in str(caught.value)
        cause = caught.value.__cause__
        assert isinstance(cause, sqlite3.OperationalError), repr(cause)
        assert cause.sqlite_errorcode == sqlite3.SQLITE_FULL
        assert all(p.is_file() for p in received), "sources are given back"
        found = audit(small_disk / "db")
        assert found.rows == 0 and found.orphans == ()
        filler.unlink()
        report = db.add_files(received, move=True)
        assert len(report.succeeded) == len(files) and not report.failed
    found = audit(small_disk / "db")
    assert found.rows == len(files) and found.missing == () and found.orphans == ()
