"""DimseNode against a real Orthanc DICOM port: echo, store, find, metadata, get, move."""

from __future__ import annotations

import threading
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.filereader import read_file_meta_info
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom.dsutils import split_dataset

from dicomstation.config import LocalNodeConfig
from dicomstation.database import Database
from dicomstation.errors import CancelledError, NotFoundError, RemoteStatusError
from dicomstation.models import (
    InstanceRef,
    Level,
    PatientRef,
    Phase,
    ProgressEvent,
    Query,
    SeriesRef,
    StudyRef,
)
from dicomstation.nodes import DicomNode, open_node
from dicomstation.nodes.base import CancelToken
from dicomstation.nodes.dimse import DimseNode
from tests.dimse.conftest import orthanc_server, sop_uid, varied_files
from tests.peers import OrthancServer, free_port
from tests.synth import write_ct_series

pytestmark = pytest.mark.orthanc


def _dataset_bytes(path: Path) -> bytes:
    _meta, offset = split_dataset(path)
    return path.read_bytes()[offset:]


def _orthanc_file(orthanc: OrthancServer, uid: str) -> bytes:
    with orthanc.rest() as client:
        found = client.post("/tools/lookup", content=uid).json()
        return client.get(f"/instances/{found[0]['ID']}/file").content


@pytest.fixture()
def loaded(clean_orthanc: OrthancServer, node: DimseNode, ct_series: list[Path]) -> list[Path]:
    """Orthanc holding the synthetic CT series, sent by C-STORE."""
    report = node.store(ct_series)
    assert report.ok and len(report.succeeded) == len(ct_series)
    return ct_series


def test_node_satisfies_the_protocol(orthanc: OrthancServer) -> None:
    node = open_node(orthanc_server(orthanc))
    assert isinstance(node, DimseNode) and isinstance(node, DicomNode)
    assert node.echo() > 0


def test_store_varied_syntaxes_without_reencoding(
    clean_orthanc: OrthancServer, node: DimseNode
) -> None:
    files = varied_files()
    events: list[ProgressEvent] = []
    report = node.store(files, progress=events.append)
    assert report.ok, report.failed
    assert sorted(report.succeeded) == sorted(sop_uid(p) for p in files)
    assert report.bytes_transferred == sum(p.stat().st_size for p in files)
    assert events[-1].phase is Phase.DONE and events[-1].done == len(files)
    for path in files:  # same transfer syntax and pixel bytes: nothing was transcoded
        stored = dcmread(BytesIO(_orthanc_file(clean_orthanc, sop_uid(path))))
        original = dcmread(path)
        assert stored.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert stored.PixelData == original.PixelData, path.name


def test_store_reports_unreadable_files(
    clean_orthanc: OrthancServer, node: DimseNode, tmp_path: Path, ct_series: list[Path]
) -> None:
    bad = tmp_path / "not-dicom.dcm"
    bad.write_bytes(b"hello")
    report = node.store([bad, ct_series[0]])
    assert report.succeeded == (sop_uid(ct_series[0]),)
    assert str(bad) in report.failed and "File Meta" in report.failed[str(bad)]


def test_store_seg_and_sr(clean_orthanc: OrthancServer, node: DimseNode, shared_data: Path) -> None:
    folder = shared_data / "highdicom_seg_sr"
    files = [
        folder / "seg_image_ct_binary.dcm",
        folder / "sr_document.dcm",
        folder / "sm_image_jpegls.dcm",
    ]
    report = node.store(files)
    assert report.ok and len(report.succeeded) == 3, report.failed


def test_find_at_every_level(loaded: list[Path], node: DimseNode) -> None:
    patients = node.find(Query(Level.PATIENT, {"PatientID": "DIMSE1"}))
    assert [type(p) for p in patients] == [PatientRef]
    assert patients[0].patient_name == "DIMSE^TEST"
    studies = node.find(Query(Level.STUDY, {"PatientName": "DIMSE^*"}))
    assert len(studies) == 1 and isinstance(studies[0], StudyRef)
    study = studies[0]
    assert study.num_instances == len(loaded) and study.modalities == ("CT",)
    series = node.find(Query(Level.SERIES, study_uid=study.study_uid))
    assert len(series) == 1 and isinstance(series[0], SeriesRef)
    assert series[0].modality == "CT" and series[0].num_instances == len(loaded)
    instances = node.find(
        Query(Level.IMAGE, study_uid=study.study_uid, series_uid=series[0].series_uid)
    )
    assert all(isinstance(i, InstanceRef) for i in instances)
    assert sorted(i.sop_instance_uid for i in instances if isinstance(i, InstanceRef)) == sorted(
        sop_uid(p) for p in loaded
    )


def test_find_patient_root_and_matching(loaded: list[Path], orthanc: OrthancServer) -> None:
    node = DimseNode(orthanc_server(orthanc), root="patient")
    studies = node.find(
        Query(Level.STUDY, {"PatientID": "DIMSE1", "StudyDate": "20230101-20251231"})
    )
    assert len(studies) == 1
    assert (
        node.find(Query(Level.STUDY, {"PatientID": "DIMSE1", "StudyDate": "19900101-19911231"}))
        == []
    )
    assert node.find(Query(Level.STUDY, {"PatientName": "NOBODY*"})) == []


def test_find_limit_offset_and_early_stop(loaded: list[Path], node: DimseNode) -> None:
    study = node.find(Query(Level.STUDY, {"PatientID": "DIMSE1"}))[0].study_uid
    every = node.find(Query(Level.IMAGE, study_uid=study))
    page = node.find(Query(Level.IMAGE, study_uid=study, limit=3, offset=2))
    assert len(page) == 3 and page == every[2:5]
    first = next(iter(node.iter_find(Query(Level.IMAGE, study_uid=study))))
    assert first == every[0]
    assert node.echo() > 0  # the cancelled association did not wedge the peer


def test_metadata_has_geometry(loaded: list[Path], node: DimseNode) -> None:
    study = node.find(Query(Level.STUDY, {"PatientID": "DIMSE1"}))[0].study_uid
    headers = node.metadata(study)
    assert len(headers) == len(loaded)
    assert all("00200032" in h and "00280030" in h and "00080018" in h for h in headers)


def _study(node: DimseNode) -> str:
    return node.find(Query(Level.STUDY, {"PatientID": "DIMSE1"}))[0].study_uid


def test_get_into_database_byte_identical_then_skips(
    loaded: list[Path], node: DimseNode, db: Database
) -> None:
    study = _study(node)
    report = node.retrieve(study, into=db)
    assert report.ok and sorted(report.succeeded) == sorted(sop_uid(p) for p in loaded)
    for path in loaded:
        assert _dataset_bytes(db.instance_path(sop_uid(path))) == _dataset_bytes(path)
    assert not list((db.root / "incoming").rglob("*.dcm"))
    again = node.retrieve(study, into=db)
    assert again.succeeded == () and len(again.skipped) == len(loaded)


def test_get_of_implicit_vr_instances_arrives_as_stored(
    clean_orthanc: OrthancServer, node: DimseNode, db: Database, tmp_path: Path
) -> None:
    """Instances stored in Implicit VR Little Endian arrive as stored, not converted.

    Implicit VR had no context of its own, only a place on the shared uncompressed one,
    where Orthanc accepts Explicit VR: it converted every instance it sent (300 CT
    slices of 512x512: C-GET at 0.37x getscu, which takes them as stored).
    """
    paths = write_ct_series(tmp_path / "implicit", 3, size=32)
    for path in paths:
        dataset = dcmread(path)
        dataset.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        dataset.save_as(path, enforce_file_format=True)
    clean_orthanc.upload(*paths)
    report = node.retrieve(str(dcmread(paths[0]).StudyInstanceUID), into=db)
    assert report.ok and sorted(report.succeeded) == sorted(sop_uid(p) for p in paths)
    for path in paths:
        fetched = db.instance_path(sop_uid(path))
        assert read_file_meta_info(fetched).TransferSyntaxUID == ImplicitVRLittleEndian
        assert _dataset_bytes(fetched) == _dataset_bytes(path)


def test_get_only_what_is_missing(loaded: list[Path], node: DimseNode, db: Database) -> None:
    study = _study(node)
    node.retrieve(study, into=db)
    gone = sop_uid(loaded[3])
    db.delete(gone)
    report = node.retrieve(study, into=db)
    assert report.succeeded == (gone,) and len(report.skipped) == len(loaded) - 1


def test_get_series_and_instances(loaded: list[Path], node: DimseNode, db: Database) -> None:
    study = _study(node)
    series = node.find(Query(Level.SERIES, study_uid=study))[0]
    assert isinstance(series, SeriesRef)
    wanted = [sop_uid(loaded[0]), sop_uid(loaded[5])]
    report = node.retrieve(study, [series.series_uid], wanted, into=db)
    assert sorted(report.succeeded) == sorted(wanted)
    report = node.retrieve(study, [series.series_uid], into=db)
    assert len(report.succeeded) == len(loaded) - 2 and len(report.skipped) == 2


def test_get_unknown_study_is_not_found(loaded: list[Path], node: DimseNode, db: Database) -> None:
    with pytest.raises(NotFoundError, match=r"1\.2\.3\.4\.5\.6\.7"):
        node.retrieve("1.2.3.4.5.6.7", into=db)


def test_get_cancelled_keeps_only_complete_instances(
    loaded: list[Path], node: DimseNode, db: Database
) -> None:
    cancel = CancelToken()

    def progress(event: ProgressEvent) -> None:
        if event.done >= 2:
            cancel.cancel()

    with pytest.raises(CancelledError):
        node.retrieve(_study(node), into=db, progress=progress, cancel=cancel)
    kept = db.has_instances(sop_uid(p) for p in loaded)
    assert 2 <= len(kept) < len(loaded) or len(kept) == len(loaded)
    for uid in kept:
        assert db.instance_path(uid).stat().st_size > 0
    assert not list((db.root / "incoming").rglob("*.part"))


def test_move_to_our_listener(loaded: list[Path], orthanc: OrthancServer, db: Database) -> None:
    port = free_port()
    orthanc.add_modality("dsmove", "DSMOVE", port)
    local = LocalNodeConfig(ae_title="DSMOVE", port=port)
    node = DimseNode(orthanc_server(orthanc, move_destination="DSMOVE"), local=local)
    assert node.method.value == "C-MOVE"
    study = _study(node)
    report = node.retrieve(study, into=db)
    assert report.ok and sorted(report.succeeded) == sorted(sop_uid(p) for p in loaded)
    for path in loaded:
        assert _dataset_bytes(db.instance_path(sop_uid(path))) == _dataset_bytes(path)
    assert node.retrieve(study, into=db).succeeded == ()


def test_move_to_unknown_destination_fails_clearly(
    loaded: list[Path], orthanc: OrthancServer, db: Database
) -> None:
    local = LocalNodeConfig(ae_title="NOWHERE", port=free_port())
    node = DimseNode(orthanc_server(orthanc, move_destination="NOWHERE"), local=local)
    study = _study(node)
    with pytest.raises(RemoteStatusError) as info:
        node.retrieve(study, into=db)
    assert info.value.operation == "C-MOVE" and info.value.uid == study
    assert "orthanc" in str(info.value)


def test_concurrent_stores_share_nothing(
    clean_orthanc: OrthancServer, node: DimseNode, ct_series: list[Path]
) -> None:
    reports = []
    halves = [ct_series[::2], ct_series[1::2]]
    threads = [threading.Thread(target=lambda h=h: reports.append(node.store(h))) for h in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(len(r.succeeded) for r in reports) == len(ct_series)
    assert clean_orthanc.count_instances() == len(ct_series)


def test_move_varied_syntaxes_arrive_as_stored(
    clean_orthanc: OrthancServer, node: DimseNode, db: Database
) -> None:
    files = varied_files()
    assert node.store(files).ok
    port = free_port()
    clean_orthanc.add_modality("dsmove2", "DSMOVE2", port)
    mover = DimseNode(
        orthanc_server(clean_orthanc, move_destination="DSMOVE2"),
        local=LocalNodeConfig(ae_title="DSMOVE2", port=port),
    )
    for study in mover.find(Query(Level.STUDY)):
        assert isinstance(study, StudyRef)
        assert mover.retrieve(study.study_uid, into=db).ok
    for path in files:
        got, original = dcmread(db.instance_path(sop_uid(path))), dcmread(path)
        assert got.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID, path.name
        assert got.PixelData == original.PixelData


def test_move_to_an_already_running_listener(
    loaded: list[Path], orthanc: OrthancServer, db: Database
) -> None:
    from dicomstation.nodes.listener import StorageListener

    port = free_port()
    orthanc.add_modality("dsrunning", "DSRUNNING", port)
    local = LocalNodeConfig(ae_title="DSRUNNING", port=port)
    with StorageListener(db, ae_title="DSRUNNING", port=port) as running:
        # the port is taken (as by `dicomstation listen`): arrival is checked in the db
        node = DimseNode(orthanc_server(orthanc, move_destination="DSRUNNING"), local=local)
        report = node.retrieve(_study(node), into=db)
        assert report.ok and sorted(report.succeeded) == sorted(sop_uid(p) for p in loaded)
        # and a listener object handed to the node is used as is
        given = DimseNode(
            orthanc_server(orthanc, move_destination="DSRUNNING"), local=local, listener=running
        )
        db.delete(sop_uid(loaded[0]))
        again = given.retrieve(_study(node), into=db)
        assert again.succeeded == (sop_uid(loaded[0]),)
    assert len(running.report.succeeded) == len(loaded) + 1


def test_patient_root_get(loaded: list[Path], orthanc: OrthancServer, db: Database) -> None:
    node = DimseNode(orthanc_server(orthanc), root="patient")
    report = node.retrieve(_study(node), into=db)
    assert report.ok and len(report.succeeded) == len(loaded)


def test_store_database_series_back(
    loaded: list[Path], node: DimseNode, db: Database, orthanc: OrthancServer
) -> None:
    study = _study(node)
    node.retrieve(study, into=db)
    orthanc.clear()
    report = node.store_uids(db, [study])
    assert report.ok and len(report.succeeded) == len(loaded)
    assert orthanc.count_instances() == len(loaded)


def test_pynetdicom_fallback_paths(
    loaded: list[Path],
    node: DimseNode,
    db: Database,
    orthanc: OrthancServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the pynetdicom internals the fast paths need, plain pynetdicom is used."""
    from dicomstation.nodes.dimse_transport import ENV_VAR

    monkeypatch.setenv(ENV_VAR, "pynetdicom")
    study = _study(node)
    report = node.retrieve(study, into=db)
    assert report.ok and len(report.succeeded) == len(loaded)
    for path in loaded:
        assert _dataset_bytes(db.instance_path(sop_uid(path))) == _dataset_bytes(path)
    orthanc.clear()
    assert node.store(varied_files()).ok
