"""QIDO-RS against the real Orthanc: levels, matching keys, ranges, paging, warnings."""

from __future__ import annotations

import datetime
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dicomstation.errors import ConfigError, ProtocolError, RemoteStatusError
from dicomstation.models import InstanceRef, Level, Query, SeriesRef, StudyRef
from dicomstation.nodes.dicomweb import DicomWebNode
from dicomstation.nodes.qido import QidoWarning, iter_matches, validate_value
from tests.dicomweb.conftest import SERIES_A, SERIES_B, STUDY, make_node
from tests.dicomweb.faultproxy import FaultProxy
from tests.peers import OrthancServer

pytestmark = pytest.mark.orthanc


def test_levels_and_typed_refs(loaded_orthanc: OrthancServer, node: DicomWebNode) -> None:
    studies = node.find(Query(Level.STUDY))
    assert [type(s) for s in studies] == [StudyRef]
    study = studies[0]
    assert isinstance(study, StudyRef)
    assert (study.study_uid, study.patient_name, study.num_instances) == (STUDY, "SYNTH^CT", 17)
    assert study.json["0020000D"]["Value"] == [STUDY]
    series = node.find(Query(Level.SERIES, study_uid=STUDY))
    assert {s.series_uid for s in series if isinstance(s, SeriesRef)} == {SERIES_A, SERIES_B}
    assert len(node.find(Query(Level.SERIES))) == 2
    inst = node.find(Query(Level.IMAGE, study_uid=STUDY, series_uid=SERIES_B))
    assert len(inst) == 5 and all(isinstance(i, InstanceRef) for i in inst)
    assert len(node.find(Query(Level.IMAGE, study_uid=STUDY))) == 17
    assert len(node.find(Query(Level.IMAGE, {"SeriesInstanceUID": SERIES_A}))) == 12


@pytest.mark.parametrize(
    "filters, count",
    [
        ({"PatientName": "SYNTH^CT"}, 1),
        ({"PatientName": "SYN*"}, 1),
        ({"PatientName": "X*"}, 0),
        ({"StudyDate": "20240101-20240131"}, 1),
        ({"StudyDate": "20240103-"}, 0),
        ({"StudyDate": "-20240102"}, 1),
        ({"PatientID": "SYNTH-?"}, 1),
        ({"StudyInstanceUID": f"{STUDY}\\1.2.3"}, 1),
        ({"AccessionNumber": "ACC1"}, 1),
        ({"ModalitiesInStudy": "CT"}, 1),
        ({"ModalitiesInStudy": "MR"}, 0),
        ({"0020000D": STUDY}, 1),
        ({"StudyTime": "100000-110000"}, 1),
    ],
)
def test_matching_keys(
    loaded_orthanc: OrthancServer, node: DicomWebNode, filters: dict[str, str], count: int
) -> None:
    assert len(node.find(Query(Level.STUDY, filters))) == count


def test_includefield_all_and_fuzzy(loaded_orthanc: OrthancServer, orthanc: OrthancServer) -> None:
    with FaultProxy(orthanc.dicomweb_url) as proxy, make_node(orthanc, proxy.url) as node:
        query = Query(Level.IMAGE, study_uid=STUDY, series_uid=SERIES_B)
        plain = node.find(query)[0]
        some = node.find(
            Query(
                Level.IMAGE,
                study_uid=STUDY,
                series_uid=SERIES_B,
                include_fields=("SliceThickness", "00280030"),
            )
        )[0]
        assert "00180050" in some.json and "00180050" not in plain.json
        full = node.find(
            Query(Level.IMAGE, study_uid=STUDY, series_uid=SERIES_B, include_fields=("all",))
        )[0]
        assert len(full.json) >= len(plain.json)  # Orthanc 1.10: "all" = its main tags
        assert node.find(Query(Level.STUDY, {"PatientName": "SYNTH*"}, fuzzy=True))
        sent = "\n".join(proxy.faults.requests)
        assert "includefield=all" in sent and "includefield=SliceThickness" in sent
        assert "fuzzymatching=true" in sent and "PatientName=SYNTH*" in sent


def test_paging_limit_offset(loaded_orthanc: OrthancServer, orthanc: OrthancServer) -> None:
    with make_node(orthanc, page_size=5) as node:
        every = [
            r.sop_instance_uid
            for r in node.iter_find(Query(Level.IMAGE, study_uid=STUDY))
            if isinstance(r, InstanceRef)
        ]
        assert len(every) == len(set(every)) == 17
        assert len(node.find(Query(Level.IMAGE, study_uid=STUDY, limit=7))) == 7
        tail = node.find(Query(Level.IMAGE, study_uid=STUDY, offset=15))
        assert len(tail) == 2


def test_lazy_paging_requests_only_what_is_read(
    loaded_orthanc: OrthancServer, orthanc: OrthancServer
) -> None:
    with (
        FaultProxy(orthanc.dicomweb_url) as proxy,
        make_node(orthanc, proxy.url, page_size=4) as node,
    ):
        found = node.iter_find(Query(Level.IMAGE, study_uid=STUDY))
        for _ in range(5):
            next(found)
        assert len(proxy.faults.requests) == 2


def test_paging_stops_when_server_ignores_offset(
    loaded_orthanc: OrthancServer, orthanc: OrthancServer
) -> None:
    with (
        FaultProxy(orthanc.dicomweb_url) as proxy,
        make_node(orthanc, proxy.url, page_size=4) as node,
    ):
        proxy.faults.strip_offset = True
        found = node.find(Query(Level.IMAGE, study_uid=STUDY))
        assert len(found) == 4  # the same first page each time: stop, no endless loop
        assert len(proxy.faults.requests) == 2


def test_warning_header_is_surfaced() -> None:
    pages = [
        (
            [{"0020000D": {"vr": "UI", "Value": ["1.2"]}}],
            ['299 pacs "There are additional results"'],
        ),
        ([], []),
    ]
    with pytest.warns(QidoWarning, match="additional results"):
        found = list(
            iter_matches(lambda limit, offset: pages.pop(0), Query(), page_size=1, server="pacs")
        )
    assert len(found) == 1


def test_server_errors_and_non_json(loaded_orthanc: OrthancServer, orthanc: OrthancServer) -> None:
    with FaultProxy(orthanc.dicomweb_url) as proxy, make_node(orthanc, proxy.url) as node:
        proxy.faults.statuses = [503, 503]
        assert len(node.find(Query(Level.STUDY))) == 1  # retried
        proxy.faults.statuses = [400]
        with pytest.raises(RemoteStatusError, match="HTTP 400"):
            node.find(Query(Level.STUDY))
        proxy.faults.content_type = "text/html"
        with pytest.raises(ProtocolError, match="text/html"):
            node.find(Query(Level.STUDY))
        proxy.faults.content_type = None
        proxy.faults.body = lambda data: data[: len(data) // 2]
        with pytest.raises(ProtocolError, match="malformed JSON"):
            node.find(Query(Level.STUDY))


def test_metadata_without_retrieving(loaded_orthanc: OrthancServer, node: DicomWebNode) -> None:
    before = loaded_orthanc.count_instances()
    study = node.metadata(STUDY)
    series = node.metadata(STUDY, SERIES_B)
    assert len(study) == 17 and len(series) == 5
    assert all("7FE00010" not in h or "Value" not in h["7FE00010"] for h in series)
    assert loaded_orthanc.count_instances() == before
    with pytest.raises(RemoteStatusError, match="not found") as info:
        node.metadata("1.2.3.4.5")
    assert info.value.uid == "1.2.3.4.5" and info.value.server == "orthanc"


@pytest.mark.parametrize(
    "key, value",
    [
        ("StudyDate", "2024-01-01"),
        ("StudyDate", "2024010"),
        ("StudyTime", "25:00"),
        ("StudyInstanceUID", "1.2.abc"),
        ("NotAKeyword", "x"),
        ("StudyDate", "20240101-2024"),
    ],
)
def test_bad_values_are_config_errors(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        validate_value(key, value)


dates = st.dates(min_value=datetime.date(1000, 1, 1)).map(lambda d: d.strftime("%Y%m%d"))


@given(dates, dates, st.sampled_from(["{a}", "{a}-", "-{a}", "{a}-{b}"]))
def test_date_ranges_accepted(a: str, b: str, form: str) -> None:
    text = form.format(a=a, b=b)
    assert validate_value("StudyDate", text) == ("StudyDate", text)


@given(
    st.lists(
        st.from_regex(r"[1-9][0-9]{0,5}(\.[0-9]{1,6}){1,6}", fullmatch=True), min_size=1, max_size=5
    )
)
def test_uid_lists_become_commas(uids: list[str]) -> None:
    assert validate_value("SeriesInstanceUID", "\\".join(uids))[1] == ",".join(uids)


def test_patient_level_is_refused() -> None:
    with pytest.raises(ConfigError, match="patient level"):
        from dicomstation.nodes.qido import query_path

        query_path(Query(Level.PATIENT))


def test_warnings_module_clean() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(iter_matches(lambda limit, offset: ([], []), Query(), server="x")) == []
