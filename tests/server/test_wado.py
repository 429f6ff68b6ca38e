"""WADO-RS: instances, series, studies, metadata, frames, bulk data, rendered, thumbnails."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from PIL import Image

from dicomstation.database import Database
from dicomstation.models import Level, Query
from dicomstation.nodes.multipart import boundary_of, iter_parts
from dicomstation.server import RunningServer

J2K = "1.2.840.10008.1.2.4.90"


def _series(db: Database, modality: str, count: int) -> tuple[str, str]:
    for ref in db.find(Query(Level.SERIES, {"Modality": modality})):
        if ref.num_instances == count:
            return ref.study_uid, ref.series_uid
    raise AssertionError("sample series missing")


def test_retrieve_series_gives_identical_files(client: DICOMwebClient, seeded_db: Database) -> None:
    study, series = _series(seeded_db, "CT", 4)
    datasets = client.retrieve_series(study, series)
    assert sorted(d.SOPInstanceUID for d in datasets) == sorted(
        pydicom.dcmread(p).SOPInstanceUID for p in seeded_db.series_files(series)
    )
    original = pydicom.dcmread(seeded_db.instance_path(datasets[0].SOPInstanceUID))
    assert datasets[0].PixelData == original.PixelData


def test_retrieve_study_and_instance(client: DICOMwebClient, seeded_db: Database) -> None:
    study, series = _series(seeded_db, "CT", 4)
    assert len(client.retrieve_study(study)) == 4
    sop = seeded_db.find(Query(Level.IMAGE, study_uid=study, series_uid=series))[0]
    ds = client.retrieve_instance(study, series, sop.sop_instance_uid)
    assert ds.SOPInstanceUID == sop.sop_instance_uid


def test_metadata_has_bulkdata_uri_that_works(client: DICOMwebClient, seeded_db: Database) -> None:
    study, series = _series(seeded_db, "CT", 4)
    metadata = client.retrieve_series_metadata(study, series)
    assert len(metadata) == 4
    uri = metadata[0]["7FE00010"]["BulkDataURI"]
    assert uri.startswith(client.base_url)
    data = client.retrieve_bulkdata(uri)
    sop = metadata[0]["00080018"]["Value"][0]
    assert data[0] == pydicom.dcmread(seeded_db.instance_path(sop)).PixelData


def test_native_frames(client: DICOMwebClient, seeded_db: Database) -> None:
    study, series = _series(seeded_db, "CT", 1)
    sop = seeded_db.find(Query(Level.IMAGE, study_uid=study, series_uid=series))[0]
    frames = client.retrieve_instance_frames(study, series, sop.sop_instance_uid, [1])
    ds = pydicom.dcmread(seeded_db.instance_path(sop.sop_instance_uid))
    assert frames[0] == ds.PixelData


def test_compressed_frames_as_stored_or_decoded(server: RunningServer, seeded_db: Database) -> None:
    study, series = _series(seeded_db, "MR", 1)
    sop = seeded_db.find(Query(Level.IMAGE, study_uid=study, series_uid=series))[0]
    url = (
        f"{server.url}/dicom-web/studies/{study}/series/{series}/instances/"
        f"{sop.sop_instance_uid}/frames/1"
    )
    stored = httpx.get(url, headers={"Accept": 'multipart/related; type="image/jp2"'})
    assert stored.status_code == 200
    assert 'type="image/jp2"' in stored.headers["content-type"]
    decoded = httpx.get(
        url, headers={"Accept": 'multipart/related; type="application/octet-stream"'}
    )
    ds = pydicom.dcmread(seeded_db.instance_path(sop.sop_instance_uid))
    assert ds.pixel_array.tobytes() in decoded.content


def test_explicit_le_request_transcodes_jpeg2000(
    server: RunningServer, seeded_db: Database
) -> None:
    study, series = _series(seeded_db, "MR", 1)
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1'
    response = httpx.get(
        f"{server.url}/dicom-web/studies/{study}/series/{series}", headers={"Accept": accept}
    )
    assert response.status_code == 200
    boundary = boundary_of(response.headers["content-type"])
    bodies = [part.read() for part in iter_parts([response.content], boundary)]
    ds = pydicom.dcmread(io.BytesIO(bodies[0]))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    original = pydicom.dcmread(seeded_db.instance_path(ds.SOPInstanceUID))
    assert original.file_meta.TransferSyntaxUID == J2K
    assert np.array_equal(ds.pixel_array, original.pixel_array)
    refused = httpx.get(
        f"{server.url}/dicom-web/studies/{study}/series/{series}",
        headers={
            "Accept": 'multipart/related; type="application/dicom"; '
            "transfer-syntax=1.2.840.10008.1.2.4.80"
        },
    )
    assert refused.status_code == 406
    assert J2K in refused.json()["detail"]


@pytest.mark.parametrize("kind", ["rendered", "thumbnail"])
def test_rendered_and_thumbnail_images(
    server: RunningServer, seeded_db: Database, kind: str
) -> None:
    study, series = _series(seeded_db, "CT", 4)
    sop = seeded_db.find(Query(Level.IMAGE, study_uid=study, series_uid=series))[0]
    base = (
        f"{server.url}/dicom-web/studies/{study}/series/{series}/instances/{sop.sop_instance_uid}"
    )
    response = httpx.get(
        f"{base}/{kind}", headers={"Accept": "image/png"}, params={"window": "40,400"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.size[0] > 0
    assert np.asarray(image).std() > 0
    for url in (
        f"{server.url}/dicom-web/studies/{study}/thumbnail",
        f"{server.url}/dicom-web/studies/{study}/series/{series}/thumbnail",
    ):
        jpeg = httpx.get(url)
        assert jpeg.status_code == 200
        assert jpeg.headers["content-type"] == "image/jpeg"


def test_rgb_multiframe_rendered_frame(server: RunningServer, seeded_db: Database) -> None:
    study, series = _series(seeded_db, "OT", 1)
    sop = seeded_db.find(Query(Level.IMAGE, study_uid=study, series_uid=series))[0]
    base = (
        f"{server.url}/dicom-web/studies/{study}/series/{series}/instances/{sop.sop_instance_uid}"
    )
    assert httpx.get(f"{base}/frames/2/rendered").status_code == 200
    missing = httpx.get(f"{base}/frames/3/rendered")
    assert missing.status_code == 404
    assert "frame 3" in missing.json()["detail"]


@pytest.mark.parametrize(
    ("suffix", "status", "fragment"),
    [
        ("/studies/1.2.3.4", 404, "study 1.2.3.4"),
        ("/studies/1.2.3.4/metadata", 404, "1.2.3.4"),
        ("/studies/1.2.3.x/metadata", 400, "1.2.3.x"),
        ("/studies/{study}/series/9.9.9", 404, "series 9.9.9"),
        ("/studies/{study}/series/{series}/instances/9.9/frames/1", 404, "instance 9.9"),
        ("/studies/{study}/series/{series}/instances/{sop}/frames/0", 400, "frame"),
        ("/studies/{study}/series/{series}/instances/{sop}/frames/a,b", 400, "frame"),
        ("/studies/{study}/series/{series}/instances/{sop}/frames/99", 404, "frame 99"),
        ("/studies/{study}/series/{series}/instances/{sop}/bulkdata/zz", 400, "tag"),
        ("/studies/{study}/series/{series}/instances/{sop}/rendered?window=1", 400, "window"),
        ("/studies/{study}/series/{series}/instances/{sop}/rendered?viewport=a", 400, "viewport"),
    ],
)
def test_bad_retrievals(
    server: RunningServer, seeded_db: Database, suffix: str, status: int, fragment: str
) -> None:
    study, series = _series(seeded_db, "CT", 4)
    sop = seeded_db.find(Query(Level.IMAGE, study_uid=study, series_uid=series))[0]
    path = suffix.format(study=study, series=series, sop=sop.sop_instance_uid)
    response = httpx.get(f"{server.url}/dicom-web{path}")
    assert response.status_code == status, response.text
    assert fragment in response.json()["detail"]


def test_instance_under_the_wrong_series_is_404(server: RunningServer, seeded_db: Database) -> None:
    study, series = _series(seeded_db, "CT", 4)
    other_study, other_series = _series(seeded_db, "CT", 1)
    sop = seeded_db.find(Query(Level.IMAGE, study_uid=other_study, series_uid=other_series))[0]
    response = httpx.get(
        f"{server.url}/dicom-web/studies/{study}/series/{series}/instances/{sop.sop_instance_uid}"
    )
    assert response.status_code == 404
