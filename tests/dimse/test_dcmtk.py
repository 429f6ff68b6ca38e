"""DimseNode and StorageListener against dcmtk: storescp, dcmqrscp, storescu (all on loopback)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pynetdicom.dsutils import split_dataset

from dicomstation.config import LocalNodeConfig
from dicomstation.database import Database
from dicomstation.models import Level, Query, SeriesRef, StudyRef
from dicomstation.nodes.dimse import DimseNode
from dicomstation.nodes.listener import StorageListener
from tests.dimse.conftest import DcmtkPeer, sop_uid, varied_files

pytestmark = pytest.mark.dcmtk


def _dataset_bytes(path: Path) -> bytes:
    meta, offset = split_dataset(path)
    data = path.read_bytes()[offset:]
    if meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian and len(data) % 2:
        data += b"\x00"  # we pad odd deflated streams (PS3.5 A.5)
    return data


def _received(folder: Path) -> dict[str, Path]:
    return {sop_uid(p): p for p in folder.iterdir() if p.is_file()}


def test_store_is_bit_identical_at_storescp(storescp: DcmtkPeer) -> None:
    files = varied_files()
    report = DimseNode(storescp.server()).store(files)
    assert report.ok and len(report.succeeded) == len(files), report.failed
    received = _received(storescp.folder)
    for path in files:
        assert _dataset_bytes(received[sop_uid(path)]) == _dataset_bytes(path), path.name


def test_store_many_instances_over_one_association(
    storescp: DcmtkPeer, ct_series: list[Path]
) -> None:
    report = DimseNode(storescp.server()).store(ct_series)
    assert len(report.succeeded) == len(ct_series)
    assert len(_received(storescp.folder)) == len(ct_series)


def _loaded_qr(dcmqrscp: DcmtkPeer, ct_series: list[Path]) -> DimseNode:
    node = DimseNode(dcmqrscp.server())
    report = node.store(ct_series)
    assert report.ok and len(report.succeeded) == len(ct_series), report.failed
    return node


def test_find_on_strict_hierarchical_scp(dcmqrscp: DcmtkPeer, ct_series: list[Path]) -> None:
    node = _loaded_qr(dcmqrscp, ct_series)
    studies = node.find(Query(Level.STUDY, {"PatientName": "DIMSE*"}))
    assert len(studies) == 1 and isinstance(studies[0], StudyRef)
    series = node.find(Query(Level.SERIES, study_uid=studies[0].study_uid))
    assert len(series) == 1 and isinstance(series[0], SeriesRef)
    images = node.find(
        Query(Level.IMAGE, study_uid=studies[0].study_uid, series_uid=series[0].series_uid)
    )
    assert len(images) == len(ct_series)


def test_get_from_dcmqrscp(dcmqrscp: DcmtkPeer, ct_series: list[Path], db: Database) -> None:
    node = _loaded_qr(dcmqrscp, ct_series)
    study = node.find(Query(Level.STUDY))[0].study_uid  # type: ignore[union-attr]
    report = node.retrieve(study, into=db)
    assert report.ok and sorted(report.succeeded) == sorted(sop_uid(p) for p in ct_series)
    for path in ct_series:
        assert _dataset_bytes(db.instance_path(sop_uid(path))) == _dataset_bytes(path)
    assert len(node.retrieve(study, into=db).skipped) == len(ct_series)


def test_move_from_dcmqrscp(
    dcmqrscp: DcmtkPeer, ct_series: list[Path], db: Database, listener_port: int
) -> None:
    _loaded_qr(dcmqrscp, ct_series)
    local = LocalNodeConfig(ae_title="MOVEDEST", port=listener_port)
    node = DimseNode(dcmqrscp.server(move_destination="MOVEDEST"), local=local)
    study = node.find(Query(Level.STUDY))[0].study_uid  # type: ignore[union-attr]
    report = node.retrieve(study, into=db)
    assert report.ok and sorted(report.succeeded) == sorted(sop_uid(p) for p in ct_series)


def _storescu(port: int, files: list[Path]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            "storescu",
            "-R",
            "-aet",
            "STORESCU",
            "-aec",
            "DICOMSTATION",
            "127.0.0.1",
            str(port),
            *map(str, files),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "pynetdicom-path"])
def test_listener_concurrent_storescu(db: Database, ct_series: list[Path], fast: bool) -> None:
    # storescu decompresses whenever the receiver also accepts uncompressed, and has no
    # decoders for several syntaxes: send it uncompressed files (see the C-MOVE tests
    # for compressed ones reaching the listener)
    files = [*ct_series, *(p for p in varied_files() if p.name == "CT_small.dcm")]
    with StorageListener(db, port=0, fast=fast) as listener:
        runs = [
            _storescu(listener.port, files[::2]),
            _storescu(listener.port, files[1::2]),
            _storescu(listener.port, files[:4]),
        ]  # overlapping: duplicates arrive
        for run in runs:
            _out, err = run.communicate(timeout=60)
            assert run.returncode == 0, err
    report = listener.report
    assert not report.failed
    assert sorted(report.succeeded) == sorted(sop_uid(p) for p in files)
    assert len(report.skipped) == 4
    assert db.has_instances(sop_uid(p) for p in files) == {sop_uid(p) for p in files}
    for path in files:  # storescu re-serialises, so compare content, not bytes
        assert dcmread(db.instance_path(sop_uid(path))).PixelData == dcmread(path).PixelData
    assert not [p for p in (db.root / "incoming").rglob("*") if p.is_file()]


def test_listener_port_in_use_is_a_clear_error(db: Database) -> None:
    from dicomstation.errors import ConfigError

    with (
        StorageListener(db, port=0) as first,
        pytest.raises(ConfigError, match=f"127.0.0.1:{first.port}"),
    ):
        StorageListener(db, port=first.port).start()
