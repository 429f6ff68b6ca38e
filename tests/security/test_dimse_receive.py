"""Attacks on the storage listener's C-STORE receive path (fast path and pynetdicom path).

A hostile SCU on loopback sends C-STOREs whose command or data set lies: a path
traversal as the SOP Instance UID, a UID or SOP class that is not the data set's,
half a data set, garbage, no SOP Instance UID. Each must be refused with the right
status and a reason, logged at once, and leave nothing on disk outside the
database; a good instance sent right after on the same association must be
answered Success only when its row and file exist.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom.sop_class import CTImageStorage, MRImageStorage

from dicomstation.database import Database
from dicomstation.nodes.listener import StorageListener
from tests.security.dimse_support import (
    TRAVERSAL,
    HostileScu,
    audit,
    concurrently,
    ct_bytes,
    ct_series,
    mr_bytes,
    staged,
)

CT, MR = str(CTImageStorage), str(MRImageStorage)
__all__ = ["ct_series"]  # a fixture from dimse_support


@pytest.fixture(params=[True, False], ids=["fast-path", "pynetdicom-path"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[StorageListener, Path]]:
    """A listener on a database in ``tmp_path/sandbox/db``; yields it and the sandbox."""
    sandbox = tmp_path / "sandbox"
    with (
        Database.open(sandbox / "db") as db,
        StorageListener(db, ae_title="LSN", port=0, fast=request.param, timeout=10) as listener,
    ):
        yield listener, sandbox


def _indexed(db: Database, uid: str) -> bool:
    return bool(db.has_instances([uid])) and db.instance_path(uid).is_file()


def _nothing_outside(sandbox: Path, db: Database) -> None:
    assert audit(sandbox, db) == []
    assert not [p for p in sandbox.parent.rglob("*PWNED*")]


def test_traversal_uid_is_refused_and_nothing_is_written_outside(
    site: tuple[StorageListener, Path], caplog: pytest.LogCaptureFixture
) -> None:
    listener, sandbox = site
    caplog.set_level(logging.WARNING)
    good = generate_uid()
    scu = HostileScu(listener.port)
    try:
        bad = scu.store(TRAVERSAL, ct_bytes(generate_uid()))
        assert "PWNED" in caplog.text and "C-STORE from HOSTILE" in caplog.text  # at once
        ok = scu.store(good, ct_bytes(good))
        assert ok.status == 0x0000 and _indexed(listener.db, good)
    finally:
        scu.close()
    assert bad.status == 0xC000 and "Affected SOP Instance UID" in bad.comment
    _nothing_outside(sandbox, listener.db)
    listener.stop()
    assert list(listener.report.succeeded) == [good]
    assert "../../../target/PWNED" in listener.report.failed


# (name, command SOP class, presentation context class, command UID, data set) -> status
def _cases() -> list[tuple[str, str, str, str, bytes, int]]:
    uid = generate_uid()
    other = generate_uid()
    whole = ct_bytes(uid)
    return [
        ("instance UID not the data set's", CT, CT, uid, ct_bytes(other), 0xA900),
        ("CT command, MR data set", CT, CT, uid, mr_bytes(uid), 0xA900),
        ("command class not the context's", MR, CT, uid, mr_bytes(uid), 0xA900),
        ("no SOP Instance UID", CT, CT, uid, ct_bytes(None), 0xC000),
        ("half a data set", CT, CT, uid, whole[: len(whole) // 2], 0xC000),
        ("garbage bytes", CT, CT, uid, bytes(range(256)) * 8, 0xC000),
        ("invalid UID characters", CT, CT, "1.2.840.99.x1", ct_bytes("1.2.840.99.x1"), 0xC000),
    ]


@pytest.mark.parametrize(
    ("name", "command_class", "context_class", "uid", "data", "status"),
    _cases(),
    ids=[c[0] for c in _cases()],
)
def test_lying_data_sets_are_refused_with_a_reason(
    site: tuple[StorageListener, Path],
    caplog: pytest.LogCaptureFixture,
    name: str,
    command_class: str,
    context_class: str,
    uid: str,
    data: bytes,
    status: int,
) -> None:
    listener, sandbox = site
    caplog.set_level(logging.WARNING)
    good = generate_uid()
    scu = HostileScu(listener.port)
    try:
        bad = scu.store(uid, data, sop_class=command_class, context_class=context_class)
        refusals = [r for r in caplog.records if "refused instance" in r.getMessage()]
        ok = scu.store(good, ct_bytes(good))  # the association goes on
        good_indexed = _indexed(listener.db, good)
    finally:
        scu.close()
    assert (bad.status, name) == (status, name)
    assert bad.comment, "a failure carries an ErrorComment"
    assert len(refusals) == 1 and "C-STORE from HOSTILE (127.0.0.1:" in refusals[0].getMessage()
    assert ok.status == 0x0000 and good_indexed
    assert not listener.db.has_instances([uid])
    _nothing_outside(sandbox, listener.db)
    listener.stop()
    assert staged(listener.db) == []


def test_every_success_is_indexed_when_it_arrives(site: tuple[StorageListener, Path]) -> None:
    listener, _sandbox = site
    scu = HostileScu(listener.port)
    uids = [generate_uid() for _ in range(20)]
    late: list[str] = []
    try:
        for uid in uids:
            answer = scu.store(uid, ct_bytes(uid), fragment=700)
            assert answer.status == 0x0000
            if not _indexed(listener.db, uid):
                late.append(uid)
    finally:
        scu.close()
    assert late == []
    for uid in uids:  # the file meta we wrote agrees with the data set
        stored = dcmread(listener.db.instance_path(uid))
        assert stored.file_meta.MediaStorageSOPInstanceUID == stored.SOPInstanceUID == uid
        assert stored.file_meta.MediaStorageSOPClassUID == stored.SOPClassUID == CT
        assert stored.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert stored.file_meta.SourceApplicationEntityTitle.strip() == "HOSTILE"


def test_a_failing_instance_does_not_take_its_batch_down(
    site: tuple[StorageListener, Path],
) -> None:
    """Instances whose study folder cannot be made fail alone, whatever batch they share."""
    listener, sandbox = site
    poisoned = generate_uid()
    (listener.db.root / "files").mkdir(exist_ok=True)
    (listener.db.root / "files" / poisoned).write_bytes(b"not a folder")

    def sender(study: str | None) -> list[tuple[str, int, bool]]:
        scu = HostileScu(listener.port)
        seen = []
        try:
            for _ in range(6):
                uid = generate_uid()
                answer = scu.store(uid, ct_bytes(uid, study=study))
                seen.append((uid, answer.status, _indexed(listener.db, uid)))
        finally:
            scu.close()
        return seen

    results = concurrently([lambda: sender(None)] * 3 + [lambda: sender(poisoned)])
    good = [item for run in results[:3] for item in run]
    bad = results[3]
    assert all(status == 0x0000 and indexed for _uid, status, indexed in good)
    assert all(status == 0xA700 and not indexed for _uid, status, indexed in bad)
    assert len(listener.db.has_instances(uid for uid, _s, _i in good)) == 18
    listener.stop()
    assert sorted(listener.report.failed) == sorted(uid for uid, _s, _i in bad)
    _nothing_outside(sandbox, listener.db)


@pytest.mark.dcmtk
def test_storescu_success_means_indexed(tmp_path: Path, ct_series: list[Path]) -> None:
    if shutil.which("storescu") is None:
        pytest.skip("dcmtk storescu is not installed")
    with (
        Database.open(tmp_path / "db") as db,
        StorageListener(db, ae_title="LSN", port=0) as listener,
    ):
        sent = subprocess.run(
            ["storescu", "-aec", "LSN", "127.0.0.1", str(listener.port), *map(str, ct_series)],
            capture_output=True,
            timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        # no wait_indexed(): storescu saw Success for each, so each is already indexed
        uids = [u for p in ct_series if (u := _uid_of(p))]
        assert db.has_instances(uids) == set(uids)


def _uid_of(path: Path) -> str:
    from pydicom.filereader import read_file_meta_info

    return str(read_file_meta_info(path).MediaStorageSOPInstanceUID)
