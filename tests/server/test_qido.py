"""QIDO-RS against dicomweb-client (an independent client) and raw HTTP for bad input."""

from __future__ import annotations

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient

from dicomstation.server import RunningServer


def _values(results: list[dict], tag: str) -> list[str]:
    out = []
    for item in results:
        value = item.get(tag, {}).get("Value", [""])[0]
        out.append(value["Alphabetic"] if isinstance(value, dict) else value)
    return out


def test_search_studies_lists_everything(client: DICOMwebClient) -> None:
    studies = client.search_for_studies()
    assert len(studies) == 4
    assert "Lestrade^G" in _values(studies, "00100010")
    assert all("00201208" in s for s in studies)  # NumberOfStudyRelatedInstances


def test_filters_match_like_a_pacs(client: DICOMwebClient) -> None:
    found = client.search_for_studies(search_filters={"PatientName": "lestrade*"})
    assert _values(found, "00100010") == ["Lestrade^G"]
    by_modality = client.search_for_studies(search_filters={"ModalitiesInStudy": "CT"})
    assert len(by_modality) >= 2
    assert client.search_for_studies(search_filters={"PatientID": "no-such-id"}) == []
    dated = client.search_for_studies(search_filters={"StudyDate": "19000101-19000102"})
    assert dated == []


def test_limit_and_offset_page_through(client: DICOMwebClient) -> None:
    every = _values(client.search_for_studies(), "0020000D")
    first = _values(client.search_for_studies(limit=2), "0020000D")
    rest = _values(client.search_for_studies(limit=2, offset=2), "0020000D")
    assert first + rest == every


def test_series_and_instances_of_every_study(client: DICOMwebClient) -> None:
    for study in client.search_for_studies():
        uid = study["0020000D"]["Value"][0]
        series = client.search_for_series(uid)
        assert len(series) == study["00201206"]["Value"][0]
        for item in series:
            series_uid = item["0020000E"]["Value"][0]
            instances = client.search_for_instances(uid, series_uid)
            assert len(instances) == item["00201209"]["Value"][0]
            assert all(i["0020000E"]["Value"] == [series_uid] for i in instances)


def test_four_slice_series_counts(client: DICOMwebClient) -> None:
    series = client.search_for_series(search_filters={"Modality": "CT"})
    counts = sorted(s["00201209"]["Value"][0] for s in series)
    assert counts == [1, 4]


def test_includefield_adds_header_attributes(client: DICOMwebClient) -> None:
    plain = client.search_for_series(search_filters={"Modality": "CT"})
    assert all("00180050" not in s for s in plain)  # SliceThickness is not in the index
    rich = client.search_for_series(search_filters={"Modality": "CT"}, fields=["SliceThickness"])
    assert all("00180050" in s for s in rich)
    everything = client.search_for_instances(
        plain[0]["0020000D"]["Value"][0], plain[0]["0020000E"]["Value"][0], fields=["all"]
    )
    assert "00280010" in everything[0]  # Rows


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/studies?limit=-1", "limit"),
        ("/studies?offset=abc", "offset"),
        ("/studies?NoSuchKeyword=1", "NoSuchKeyword"),
        ("/studies?StudyInstanceUID=1.2.abc", "1.2.abc"),
        ("/studies?PatientWeight=70", "cannot match on PatientWeight"),
        ("/studies/1.02.3/series", "1.02.3"),
        ("/studies/" + "1" * 70 + "/series", "invalid StudyInstanceUID"),
        ("/studies?includefield=NotAKeyword", "NotAKeyword"),
        ("/series?ModalitiesInStudy=CT&SOPInstanceUID=1.2", "cannot be matched"),
    ],
)
def test_bad_queries_are_400_with_a_clear_message(
    server: RunningServer, path: str, fragment: str
) -> None:
    response = httpx.get(f"{server.url}/dicom-web{path}")
    assert response.status_code == 400, response.text
    assert fragment in response.json()["detail"]


def test_instance_searches_across_studies(client: DICOMwebClient, server: RunningServer) -> None:
    every = client.search_for_instances()
    assert len(every) == 7
    ct = client.search_for_instances(search_filters={"SOPClassUID": "1.2.840.10008.5.1.4.1.1.2"})
    assert len(ct) == 5
    study = ct[0]["0020000D"]["Value"][0]
    in_study = httpx.get(f"{server.url}/dicom-web/studies/{study}/instances").json()
    assert {i["0020000D"]["Value"][0] for i in in_study} == {study}
    bad = httpx.get(f"{server.url}/dicom-web/instances", params={"InstanceNumber": "abc"})
    assert bad.status_code == 400
    assert "not an integer" in bad.json()["detail"]
