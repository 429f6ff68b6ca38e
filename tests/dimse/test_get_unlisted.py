"""C-GET without the C-FIND listing first, and acknowledging before indexing (issue 15).

A series (or study) the database holds nothing of is asked for at once, with no
IMAGE-level C-FIND; a partly held one is listed and only the rest asked for; a
C-GET whose sub-operations fail is listed and asked again. A C-GET's C-STORE-RSP
Success means the file is safe on disk; a process killed before indexing it
leaves it for the next open of the database, which indexes it.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import MRImageStorage, generate_uid

from dicomstation.database import Database
from dicomstation.errors import NotFoundError
from dicomstation.models import ProgressEvent
from dicomstation.nodes.dimse import DimseNode
from dicomstation.nodes.dimse_filemeta import read_file_meta
from tests.dimse.conftest import DcmtkPeer, sop_uid

pytestmark = pytest.mark.dcmtk


class _Listings:
    """Counts the listings (IMAGE-level C-FIND) a node makes: a spy on the real call."""

    def __init__(self, node: DimseNode, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = node._listing

        def counted(*args: object) -> object:
            self.count += 1
            return real(*args)  # type: ignore[arg-type]

        monkeypatch.setattr(node, "_listing", counted)


def _loaded(dcmqrscp: DcmtkPeer, files: list[Path]) -> DimseNode:
    node = DimseNode(dcmqrscp.server())
    report = node.store(files)
    assert report.ok and len(report.succeeded) == len(files), report.failed
    return node


def _uids(files: list[Path]) -> tuple[str, str]:
    first = dcmread(files[0], stop_before_pixels=True)
    return str(first.StudyInstanceUID), str(first.SeriesInstanceUID)


def test_series_into_an_empty_database_is_not_listed(
    dcmqrscp: DcmtkPeer, ct_series: list[Path], db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = _loaded(dcmqrscp, ct_series)
    listings = _Listings(node, monkeypatch)
    study, series = _uids(ct_series)
    events: list[ProgressEvent] = []
    report = node.retrieve(study, [series], into=db, progress=events.append)
    assert report.ok and sorted(report.succeeded) == sorted(sop_uid(p) for p in ct_series)
    assert listings.count == 0
    assert len(db.series_files(series)) == len(ct_series)
    # the total comes from the C-GET responses' counts (the first store may come before)
    assert len(events) == len(ct_series)
    assert {e.total for e in events[1:]} == {len(ct_series)}


def test_partly_held_series_is_listed_and_only_the_rest_asked(
    dcmqrscp: DcmtkPeer, ct_series: list[Path], db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = _loaded(dcmqrscp, ct_series)
    held = ct_series[:5]
    db.import_path(held)
    listings = _Listings(node, monkeypatch)
    study, series = _uids(ct_series)
    report = node.retrieve(study, [series], into=db)
    assert listings.count == 1
    assert sorted(report.skipped) == sorted(sop_uid(p) for p in held)
    assert sorted(report.succeeded) == sorted(sop_uid(p) for p in ct_series[5:])


def test_failed_sub_operations_are_listed_and_asked_again(
    dcmqrscp: DcmtkPeer,
    ct_series: list[Path],
    db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Modality CT, SOP class MR: not among the contexts proposed for a CT series,
    # so dcmqrscp fails that sub-operation; the listing names the class.
    odd = dcmread(ct_series[0])
    odd.SOPClassUID = odd.file_meta.MediaStorageSOPClassUID = MRImageStorage
    odd.SOPInstanceUID = odd.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    odd_path = tmp_path / "odd.dcm"
    odd.save_as(odd_path, enforce_file_format=True)
    files = [*ct_series[:3], odd_path]
    node = _loaded(dcmqrscp, files)
    listings = _Listings(node, monkeypatch)
    study, series = _uids(files)
    report = node.retrieve(study, [series], into=db)
    assert report.ok, report.failed
    assert listings.count == 1  # after the unlisted C-GET reported the failure
    assert sorted(report.succeeded) == sorted(sop_uid(p) for p in files)
    assert str(dcmread(db.instance_path(sop_uid(odd_path))).SOPClassUID) == MRImageStorage


def test_unknown_series_is_not_found(
    dcmqrscp: DcmtkPeer, ct_series: list[Path], db: Database
) -> None:
    node = _loaded(dcmqrscp, ct_series[:1])
    study, _ = _uids(ct_series)
    with pytest.raises(NotFoundError, match=r"1\.2\.3\.4\.5\.6\.7"):
        node.retrieve(study, ["1.2.3.4.5.6.7"], into=db)


def _data_set(path: Path) -> bytes:
    meta = read_file_meta(path)
    assert meta is not None
    return path.read_bytes()[meta.offset :]


_KILLED_AFTER_SUCCESS = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from dicomstation.database import Database
    from dicomstation.nodes.dimse_instance import StoreRequest
    from dicomstation.nodes.dimse_receive import Receiver
    from dicomstation.nodes.dimse_filemeta import read_file_meta

    root, path, sop_class, sop_uid, syntax = sys.argv[1:]
    db = Database.open(root)
    receiver = Receiver(db, operation="C-GET")
    request = StoreRequest(sop_class, sop_uid, sop_class, syntax, "QRSCP", "C-GET from test")
    incoming = receiver.begin(request)
    data = Path(path).read_bytes()
    incoming.write(data[read_file_meta(Path(path)).offset:])
    outcome = incoming.finish(defer=True)
    print(hex(outcome.status), flush=True)
    os._exit(0)  # killed after the C-STORE-RSP would have gone out, before indexing
    """
)


def test_success_before_indexing_survives_a_kill(ct_series: list[Path], tmp_path: Path) -> None:
    path = ct_series[0]
    ds = dcmread(path, stop_before_pixels=True)
    root = tmp_path / "db"
    Database.open(root).close()
    args = [str(root), str(path), str(ds.SOPClassUID), str(ds.SOPInstanceUID)]
    args.append(str(ds.file_meta.TransferSyntaxUID))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_AFTER_SUCCESS, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "0x0", done.stderr
    with sqlite3.connect(root / "index.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM instances").fetchone() == (0,)
    with Database.open(root) as db:  # the next open indexes what was acknowledged
        assert _data_set(db.instance_path(str(ds.SOPInstanceUID))) == _data_set(path)
