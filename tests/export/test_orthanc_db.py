"""Exported records land in the local database and are accepted by a real Orthanc."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from dicomstation import processing as proc
from dicomstation.database import Database
from dicomstation.export import (
    Scene,
    SceneVolume,
    Segment,
    SourceSeries,
    build_bundle,
    build_derived_series,
    build_sc,
    build_seg,
    build_sr,
    import_into,
    render_mip,
    write_datasets,
)
from tests.peers import OrthancServer


@pytest.fixture(scope="module")
def exported(ct: SourceSeries) -> dict[str, list[Dataset]]:
    """One of each exported object type (derived: 3 slices are enough)."""
    mask = proc.threshold(ct.volume, 250, 350)
    seg = build_seg(ct, [Segment("Bright", mask, codes.SCT.Tissue, codes.SCT.Bone)])
    stats = proc.segment_statistics(ct.volume, {1: mask}, {1: "Bright"})
    derived = build_derived_series(ct, proc.gaussian_smooth(ct.volume, 1.0))[:3]
    return {
        "seg": [seg],
        "sr": [build_sr(seg, ct, stats)],
        "derived": derived,
        "sc": [build_sc(render_mip(ct.volume), ct)],
        "bundle": [build_bundle(Scene((SceneVolume("CT", ct.volume),)), ct)],
    }


def test_exports_are_imported_into_the_local_database(
    exported: dict[str, list[Dataset]], ct: SourceSeries
) -> None:
    with Database.temporary() as db:
        for kind, datasets in exported.items():
            report = import_into(db, datasets)
            uids = {str(ds.SOPInstanceUID) for ds in datasets}
            assert len(report.succeeded) == len(uids), (kind, report)
            assert db.has_instances(uids) == uids, kind
            for ds in datasets:
                stored = pydicom.dcmread(db.instance_path(str(ds.SOPInstanceUID)))
                assert stored.StudyInstanceUID == ct.first.StudyInstanceUID
        again = import_into(db, exported["seg"])
        assert not again.succeeded  # deduplicated by SOP Instance UID


@pytest.mark.orthanc
def test_orthanc_stores_every_exported_object(
    exported: dict[str, list[Dataset]], clean_orthanc: OrthancServer, tmp_path: Path
) -> None:
    for kind, datasets in exported.items():
        paths = write_datasets(datasets, tmp_path / kind)
        ids = clean_orthanc.upload(*paths)
        with clean_orthanc.rest() as client:
            for orthanc_id, path, ds in zip(ids, paths, datasets, strict=True):
                tags = client.get(f"/instances/{orthanc_id}/simplified-tags").json()
                assert tags["SOPInstanceUID"] == ds.SOPInstanceUID, kind
                assert tags["SOPClassUID"] == ds.SOPClassUID, kind
                stored = client.get(f"/instances/{orthanc_id}/file").content
                assert stored == path.read_bytes(), kind


@pytest.mark.orthanc
@pytest.mark.dcmtk
def test_orthanc_accepts_every_exported_object_over_c_store(
    exported: dict[str, list[Dataset]], clean_orthanc: OrthancServer, tmp_path: Path
) -> None:
    if shutil.which("storescu") is None:
        pytest.skip("dcmtk storescu is not installed")
    paths = [p for kind, ds in exported.items() for p in write_datasets(ds, tmp_path / kind)]
    run = subprocess.run(
        [
            "storescu",
            "-R",
            "-aet",
            "STORESCU",
            "-aec",
            clean_orthanc.aet,
            "127.0.0.1",
            str(clean_orthanc.dicom_port),
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert clean_orthanc.count_instances() == len(paths)


@pytest.mark.orthanc
@pytest.mark.parametrize("protocol", ["STOW-RS", "C-STORE"])
def test_orthanc_accepts_every_exported_object_through_the_node_interface(
    exported: dict[str, list[Dataset]],
    clean_orthanc: OrthancServer,
    tmp_path: Path,
    protocol: str,
) -> None:
    from dicomstation.config import Credentials, DicomWebServer, DimseServer, Secret
    from dicomstation.nodes import open_node

    if protocol == "STOW-RS":
        server: DicomWebServer | DimseServer = DicomWebServer(
            "orthanc",
            clean_orthanc.dicomweb_url,
            Credentials(username=clean_orthanc.user, password=Secret(clean_orthanc.password)),
        )
    else:
        server = DimseServer(
            "orthanc",
            clean_orthanc.aet,
            "127.0.0.1",
            clean_orthanc.dicom_port,
            calling_ae="STORESCU",
        )
    paths = [p for kind, ds in exported.items() for p in write_datasets(ds, tmp_path / kind)]
    node = open_node(server)
    try:
        report = node.store(paths)
    finally:
        node.close()
    assert not report.failed, report.failed
    assert clean_orthanc.count_instances() == len(paths)
    with clean_orthanc.rest() as client:
        for kind, datasets in exported.items():
            for ds in datasets:
                found = client.post(
                    "/tools/find",
                    json={"Level": "Instance", "Query": {"SOPInstanceUID": ds.SOPInstanceUID}},
                ).json()
                assert len(found) == 1, (kind, protocol)
