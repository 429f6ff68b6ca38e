"""Fetched instances are scanned once, from the bytes the fetcher holds.

Small parts held whole in memory are written straight into place (Database.add_encoded);
large ones are staged by the writer thread and indexed from the scan of their head.

A small WADO-RS part that arrived whole is scanned in memory and written at its
final path inside the transaction that indexes it (no staging file, no rename).
A process killed after some files of a batch were written (one of them half
written) and before the commit leaves nothing on the next open: the journal
names every target, so none is an orphan, and no row points at a partial file.
"""

from __future__ import annotations

import ast
import signal
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from dicomstation import Level, Query
from dicomstation.database import Database
from dicomstation.database.importer import Scanned
from dicomstation.database.scanner import scan_bytes
from dicomstation.models import InstanceRef
from tests.dicomweb.conftest import SERIES_B, STUDY, make_node
from tests.dicomweb.faultproxy import FaultProxy
from tests.dicomweb.synth import make_series
from tests.peers import OrthancServer
from tests.security.db_support import audit, env
from tests.synth import write_ct_series

# Fault injection of our own: killed while writing the 4th file of the batch (half of
# it on disk), after three complete ones were placed, before the rows are committed.
_KILLED = """
import os, signal, sys
from pathlib import Path
from dicomstation.database import Database, ingest
from dicomstation.database.importer import Scanned
from dicomstation.database.scanner import scan_bytes

real, calls = ingest._write_private, []

def dying(path, data):
    calls.append(path)
    if len(calls) == 4:
        real(path, bytes(data)[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    real(path, data)

ingest._write_private = dying
db = Database.open(sys.argv[1])
items = []
for source in sorted(Path(sys.argv[2]).iterdir()):
    data = source.read_bytes()
    found = scan_bytes(data, source.name)
    uid = found.fields["SOPInstanceUID"]
    items.append((Scanned(uid, found.fields, found.transfer_syntax, len(data)), memoryview(data)))
db.add_encoded(items)
"""


def _held(paths: list[Path]) -> list[tuple[Scanned, bytes]]:
    items = []
    for path in paths:
        data = path.read_bytes()
        found = scan_bytes(data, path.name)
        uid = str(found.fields["SOPInstanceUID"])
        items.append((Scanned(uid, found.fields, found.transfer_syntax, len(data)), data))
    return items


def test_killed_while_writing_held_instances_leaves_nothing(tmp_path: Path) -> None:
    sources = write_ct_series(tmp_path / "src", 6, size=16)
    db = tmp_path / "db"
    done = subprocess.run(
        [sys.executable, "-c", _KILLED, str(db), str(tmp_path / "src")],
        capture_output=True,
        text=True,
        env=env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    placed = list((db / "files").rglob("*.dcm"))
    assert len(placed) == 4, "the kill lands after 3 whole files and a half-written one"
    with Database.open(db) as database:  # the journal of the dead writer is replayed
        found = audit(db)
        assert found.rows == 0 and found.orphans == () and found.missing == ()
        report = database.add_encoded(_held(sources))
        assert len(report.succeeded) == len(sources)
    found = audit(db)
    assert found.rows == len(sources) and found.orphans == () and found.missing == ()
    for source in sources:  # every byte as sent, none from the half-written try
        uid = str(scan_bytes(source.read_bytes(), source.name).fields["SOPInstanceUID"])
        with Database.open(db) as database:
            assert database.instance_path(uid).read_bytes() == source.read_bytes()


def test_held_duplicates_are_skipped_and_the_stored_file_kept(tmp_path: Path) -> None:
    sources = write_ct_series(tmp_path / "src", 3, size=16)
    with Database.open(tmp_path / "db") as db:
        first = _held(sources[:2])
        assert len(db.add_encoded(first).succeeded) == 2
        stored = db.instance_path(first[0][0].source)
        before = stored.stat().st_mtime_ns
        again = _held(sources)  # two present, one new, and the new one twice in the batch
        report = db.add_encoded([*again, again[2]])
        assert report.succeeded == (again[2][0].source,)
        assert sorted(report.skipped) == sorted(
            [again[0][0].source, again[1][0].source, again[2][0].source]
        )
        assert stored.stat().st_mtime_ns == before, "a present instance is not rewritten"
        assert (stored.stat().st_mode & 0o777) == 0o600
    found = audit(tmp_path / "db")
    assert found.rows == 3 and found.orphans == () and found.missing == ()


@pytest.mark.orthanc
def test_an_invalid_part_is_reported_and_the_others_kept(
    loaded_orthanc: OrthancServer, orthanc: OrthancServer, db: Database
) -> None:
    # the first part's DICM magic broken (same length): not DICOM, nothing written for it
    with FaultProxy(orthanc.dicomweb_url) as proxy, make_node(orthanc, proxy.url) as node:
        proxy.faults.match, proxy.faults.accept = f"/series/{SERIES_B}", "multipart"
        proxy.faults.body = lambda d: d.replace(b"DICM", b"DICX", 1)
        report = node.retrieve(STUDY, [SERIES_B], into=db)
    ((uid, reason),) = report.failed.items()
    assert uid.startswith(SERIES_B) and "orthanc sent an invalid instance" in reason, reason
    kept = db.has_instances(f"{SERIES_B}.{i}" for i in range(1, 6))
    assert uid not in kept and len(kept) == len(report.succeeded) >= 1
    for sop in kept:
        pydicom.dcmread(db.instance_path(sop))
    assert not any(p.is_file() for p in (db.root / "incoming").rglob("*"))


@pytest.mark.orthanc
def test_large_parts_are_staged_and_indexed_from_their_scanned_heads(
    clean_orthanc: OrthancServer, tmp_path: Path, db: Database
) -> None:
    # parts of ~526 kB (over the inline limit) go through the writer thread; the
    # receiving thread scans their heads, the indexer neither stats nor reads them
    study = "1.2.826.0.1.3680043.8.498.5"
    files = make_series(tmp_path / "big", study_uid=study, series_uid=study + ".1", count=3)
    clean_orthanc.upload(*files)
    with make_node(clean_orthanc) as node:
        report = node.retrieve(study, [study + ".1"], into=db)
    assert report.ok and len(report.succeeded) == 3, report.failed
    for source in files:
        sent = pydicom.dcmread(source)
        stored = db.instance_path(sent.SOPInstanceUID)
        assert stored.read_bytes() == source.read_bytes()
        (row,) = db.find(Query(Level.IMAGE, {"SOPInstanceUID": sent.SOPInstanceUID}))
        assert isinstance(row, InstanceRef) and row.series_uid == study + ".1"
        assert (row.sop_class_uid, row.instance_number) == (sent.SOPClassUID, sent.InstanceNumber)
    assert not any(p.is_file() for p in (db.root / "incoming").rglob("*"))


_FIRST_SCAN = """
import sys
from pathlib import Path
from dicomstation.database.scanner import scan_bytes
before = set(sys.modules)
found = scan_bytes(Path(sys.argv[1]).read_bytes(), "slice")
assert found.fields["PatientName"], found.fields
new = set(sys.modules) - before
print(sorted(m for m in new if "codec" in m or m.startswith("encodings.")))
"""


def test_first_scan_of_a_process_imports_no_codec_it_does_not_use(tmp_path: Path) -> None:
    # a fetch runs in many short processes (pipeline tasks): checking every character
    # set's codec on the first scan imported ~20 modules (~30 ms) into each of them
    (source,) = write_ct_series(tmp_path / "src", 1, size=16)
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_SCAN, str(source)],
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
        check=True,
    )
    imported = ast.literal_eval(done.stdout.strip())
    assert not [m for m in imported if m.startswith("_codecs_") or "multibyte" in m], imported
    assert len(imported) <= 3, imported  # the slice's own (latin_1) and what pydicom needs
