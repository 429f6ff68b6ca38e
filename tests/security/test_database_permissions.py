"""Database folders are created 0700 and files 0600, whatever the umask.

Attack (issue 10, item 6): the database folder and files were created
world-readable (patient data readable by every local user) while settings are 0600.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.security.db_support import env
from tests.synth import write_ct_series

# Runs under a permissive umask; reports the mode of everything it made.
_CHILD = """
import json, os, sys
from pathlib import Path
from dicomstation import Database
from dicomstation.database.importer import scan_files

root, source = Path(sys.argv[1]), sys.argv[2]
modes = {}
with Database.open(root) as db:
    db.import_path(source, workers=1)  # copies
    staging = db.staging_dir("recv")
    modes["staging"] = staging.stat().st_mode
    some = [os.path.join(source, n) for n in os.listdir(source)][:2]
    for batch in scan_files(some, str(staging)):
        for item in batch:
            modes["staged copy"] = os.stat(item.staged).st_mode
            os.unlink(item.staged)
    received = staging / "x.dcm"  # as another writer of the package would make it
    received.write_bytes(Path(sys.argv[3]).read_bytes())
    os.chmod(received, 0o666)
    db.add_files([received], move=True)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            modes[os.path.relpath(path, root)] = os.stat(path).st_mode
    modes["."] = root.stat().st_mode
print(json.dumps({k: v & 0o777 for k, v in modes.items()}))
"""


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_new_database_is_private(tmp_path: Path, umask: int) -> None:
    source = tmp_path / "src"
    write_ct_series(source, 3, size=16)
    other = write_ct_series(tmp_path / "other", 1, size=16)[0]
    root = tmp_path / "nested" / "db"
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(root), str(source), str(other)],
        capture_output=True,
        text=True,
        env=env(),
        timeout=120,
        preexec_fn=lambda: os.umask(umask),  # in the child only
        check=False,
    )
    assert done.returncode == 0, done.stderr
    modes: dict[str, int] = json.loads(done.stdout)
    assert modes["staging"] == 0o700
    assert modes["staged copy"] == 0o600
    for name in (".", "files", "incoming"):
        assert modes[name] == 0o700, name
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):
        assert modes[name] == 0o600, name
    stored = [k for k in modes if k.startswith("files/") and k.endswith(".dcm")]
    assert len(stored) == 4, "three copied, one moved in"
    folders = [k for k in modes if k.startswith("files/") and not k.endswith(".dcm")]
    assert len(folders) == 4, "two studies, each one series"
    loose = {k: oct(v) for k, v in modes.items() if v & 0o077}
    assert not loose, f"readable by others: {loose}"
    assert (tmp_path / "nested").stat().st_mode & 0o777 == 0o700
