"""dicomweb-client (Python, the PyPI package) runs its whole public API against our server.

Every public method of :class:`dicomweb_client.DICOMwebClient` is called on a small
real dataset (the dcm_qa_ts MR as explicit LE, big endian and JPEG 2000, a 10-frame
enhanced MR); what comes back is compared with pydicom's reading of the stored files.
DELETE is not offered by our server: the delete methods get a clean 4xx.
"""

from __future__ import annotations

import inspect
from io import BytesIO
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.conformance.conftest import Served

dicomweb_client = pytest.importorskip("dicomweb_client")
from requests import HTTPError  # noqa: E402  (dicomweb-client's own dependency)

pytestmark = pytest.mark.shared

EMRI = "emri_small.dcm"
COVERED = {
    "delete_instance",
    "delete_series",
    "delete_study",
    "iter_bulkdata",
    "iter_instance_frames",
    "iter_series",
    "iter_study",
    "lookup_keyword",
    "lookup_tag",
    "retrieve_bulkdata",
    "retrieve_instance",
    "retrieve_instance_frames",
    "retrieve_instance_frames_rendered",
    "retrieve_instance_metadata",
    "retrieve_instance_rendered",
    "retrieve_series",
    "retrieve_series_metadata",
    "retrieve_series_rendered",
    "retrieve_study",
    "retrieve_study_metadata",
    "search_for_instances",
    "search_for_series",
    "search_for_studies",
    "set_chunk_size",
    "set_http_retry_params",
    "store_instances",
}


@pytest.fixture(scope="module")
def client(small_server: Served) -> Any:
    web = dicomweb_client.DICOMwebClient(url=small_server.url)
    web.set_http_retry_params(retry=False)  # an error must show, not be retried away
    web.set_chunk_size(64 << 10)  # streamed answers cross many chunks
    return web


def _first(obj: dict[str, Any], tag: str) -> Any:
    return obj[tag]["Value"][0]


def _uids(small_server: Served, name: str) -> tuple[str, str, str]:
    path = next(p for p in small_server.files.values() if p.name == name)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def _pixels(small_server: Served, sop: str) -> np.ndarray:
    return np.asarray(pydicom.dcmread(small_server.files[sop]).pixel_array)


def test_every_public_method_is_covered_here() -> None:
    public = {
        name
        for name, member in inspect.getmembers(dicomweb_client.DICOMwebClient)
        if not name.startswith("_") and callable(member)
    }
    assert public <= COVERED, f"new dicomweb-client methods to test: {sorted(public - COVERED)}"


def test_searches_at_every_level(client: Any, small_server: Served) -> None:
    studies = client.search_for_studies()
    assert len(studies) == 2
    for study in studies:
        uid = _first(study, "0020000D")
        series = client.search_for_series(uid)
        for one in series:
            found = client.search_for_instances(uid, _first(one, "0020000E"))
            assert len(found) == int(_first(one, "00201209"))  # NumberOfSeriesRelatedInstances
    everything = client.search_for_instances(fields=["all"])
    assert {_first(i, "00080018") for i in everything} == set(small_server.files)
    mr = client.search_for_series(search_filters={"Modality": "MR"}, fields=["SeriesDescription"])
    assert len(mr) == 2 and all("0008103E" in s for s in mr)
    # paging: one result per page, and get_remaining follows offset to the end
    assert len(client.search_for_instances(limit=1)) == 1
    assert len(client.search_for_instances(limit=1, get_remaining=True)) == len(small_server.files)
    assert len(client.search_for_instances(offset=3)) == len(small_server.files) - 3
    fuzzy = client.search_for_studies(fuzzymatching=True, search_filters={"PatientName": "*"})
    assert len(fuzzy) == 2


def test_study_series_and_instance_retrieval(client: Any, small_server: Served) -> None:
    study, series, sop = _uids(small_server, "3.dcm")  # big endian as stored
    datasets = client.retrieve_study(study)
    assert {d.SOPInstanceUID for d in datasets} == {
        s for s in small_server.files if small_server.files[s].parent.name == "In"
    }
    for ds in datasets:  # explicit LE unless asked otherwise (PS3.18 8.7.3.5.2)
        assert np.array_equal(ds.pixel_array, _pixels(small_server, ds.SOPInstanceUID))
    assert [d.SOPInstanceUID for d in client.iter_study(study)] == [
        d.SOPInstanceUID for d in datasets
    ]
    assert len(client.retrieve_series(study, series)) == 3
    assert sum(1 for _ in client.iter_series(study, series)) == 3
    one = client.retrieve_instance(study, series, sop)
    assert one.SOPInstanceUID == sop
    assert np.array_equal(one.pixel_array, _pixels(small_server, sop))
    as_stored = client.retrieve_instance(
        study, series, sop, media_types=(("application/dicom", "*"),)
    )
    assert np.array_equal(as_stored.pixel_array, _pixels(small_server, sop))


def test_metadata_at_every_level(client: Any, small_server: Served) -> None:
    study, series, sop = _uids(small_server, EMRI)
    instance = client.retrieve_instance_metadata(study, series, sop)
    assert _first(instance, "00080018") == sop
    assert "BulkDataURI" in instance["7FE00010"]
    assert [_first(i, "00080018") for i in client.retrieve_series_metadata(study, series)] == [sop]
    assert len(client.retrieve_study_metadata(study)) == 1
    ds = pydicom.Dataset.from_json(instance, lambda uri: b"")
    assert int(ds.NumberOfFrames) == 10


def test_frames_equal_pydicom_decoding(client: Any, small_server: Served) -> None:
    study, series, sop = _uids(small_server, EMRI)
    reference = _pixels(small_server, sop)  # (10, rows, columns)
    frames = client.retrieve_instance_frames(study, series, sop, [1, 3, 10])
    assert len(frames) == 3
    for number, frame in zip((1, 3, 10), frames, strict=True):
        assert frame == reference[number - 1].astype("<u2").tobytes(), f"frame {number}"
    streamed = list(client.iter_instance_frames(study, series, sop, [2]))
    assert streamed == [reference[1].astype("<u2").tobytes()]
    study, series, sop = _uids(small_server, "3.dcm")  # big endian stored: little endian served
    [frame] = client.retrieve_instance_frames(study, series, sop, [1])
    expected = _pixels(small_server, sop)
    assert frame == expected.astype(expected.dtype.newbyteorder("<")).tobytes()


def test_bulkdata_equals_the_stored_pixel_data(client: Any, small_server: Served) -> None:
    study, series, sop = _uids(small_server, "1.dcm")
    instance = client.retrieve_instance_metadata(study, series, sop)
    uri = instance["7FE00010"]["BulkDataURI"]
    stored = pydicom.dcmread(small_server.files[sop]).PixelData
    assert b"".join(client.retrieve_bulkdata(uri)) == stored
    assert b"".join(client.iter_bulkdata(uri)) == stored


def test_rendered_images(client: Any, small_server: Served) -> None:
    from PIL import Image

    study, series, sop = _uids(small_server, "9.dcm")  # JPEG 2000 as stored
    rows, columns = _pixels(small_server, sop).shape
    png = client.retrieve_instance_rendered(study, series, sop, media_types=("image/png",))
    assert Image.open(BytesIO(png)).size == (columns, rows)
    jpeg = client.retrieve_instance_rendered(study, series, sop, media_types=("image/jpeg",))
    assert Image.open(BytesIO(jpeg)).format == "JPEG"
    frame = client.retrieve_instance_frames_rendered(
        study, series, sop, [1], media_types=("image/png",)
    )
    image = np.asarray(Image.open(BytesIO(frame)).convert("L"))
    assert image.shape == (rows, columns) and image.std() > 10  # an image, not a blank
    series_png = client.retrieve_series_rendered(study, series, media_types=("image/png",))
    assert Image.open(BytesIO(series_png)).format == "PNG"


def test_store_instances_then_find_them(client: Any, small_server: Served) -> None:
    source = next(p for p in small_server.files.values() if p.name == "1.dcm")
    ds = pydicom.dcmread(source)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    answer = client.store_instances([ds])
    [stored] = answer.ReferencedSOPSequence
    assert stored.ReferencedSOPInstanceUID == ds.SOPInstanceUID
    assert "FailedSOPSequence" not in answer
    found = client.search_for_instances(search_filters={"SOPInstanceUID": ds.SOPInstanceUID})
    assert len(found) == 1
    back = client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert np.array_equal(back.pixel_array, ds.pixel_array)


def test_delete_is_refused_cleanly(client: Any, small_server: Served) -> None:
    study, series, sop = _uids(small_server, "1.dcm")
    calls = (
        lambda: client.delete_instance(study, series, sop),
        lambda: client.delete_series(study, series),
        lambda: client.delete_study(study),
    )
    for call in calls:
        with pytest.raises(HTTPError) as refused:
            call()
        assert 400 <= refused.value.response.status_code < 500
    assert small_server.db.has_instances([sop]) == {sop}  # nothing was deleted


def test_keyword_lookups() -> None:
    web = dicomweb_client.DICOMwebClient
    assert web.lookup_tag("StudyInstanceUID") == "0020000D"
    assert web.lookup_keyword("0020000D") == "StudyInstanceUID"
