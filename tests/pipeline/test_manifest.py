"""Cohort manifests as TCIA, IDC and spreadsheet users keep them.

Tried as a user would: TCIA's NBIA Data Retriever writes ``metadata.csv`` with
``Study UID`` / ``Series UID`` columns and keeps cohorts as ``.tcia`` manifests (series
UIDs only); an IDC series list names no study; a spreadsheet in a European locale
saves CSV with ``;``. Each was refused ("the CSV header must name a StudyInstanceUID
column"). Series-only rows get their study from a real Orthanc (QIDO-RS) here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from dicomstation.errors import ConfigError, NotFoundError
from dicomstation.pipeline import Pipeline, RunOptions
from dicomstation.pipeline.driver import list_items
from dicomstation.pipeline.model import WorkItem
from dicomstation.pipeline.sources import ManifestSource
from tests.peers import OrthancServer
from tests.pipeline.conftest import make_cohort, settings_for

STUDY, SERIES, OTHER = (str(generate_uid()) for _ in range(3))


def _items(path: Path) -> list[WorkItem]:
    def no_server(name: str) -> None:
        raise AssertionError(f"no server may be asked (asked {name!r})")

    return list(ManifestSource(path).items(no_server))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        # TCIA / NBIA Data Retriever metadata.csv (quoted, commas inside a value, CRLF)
        '"Series UID","Collection","Subject ID","Study UID","Study Description"\r\n'
        f'"{SERIES}","LIDC-IDRI","LIDC-0001","{STUDY}","CHEST, W/O CONTRAST"\r\n'
        f'"{OTHER}","LIDC-IDRI","LIDC-0001","{STUDY}","CHEST, W/O CONTRAST"\r\n',
        # a European spreadsheet: semicolons, a byte order mark, lower-case names
        f"\ufeffstudyinstanceuid;seriesinstanceuid\n{STUDY};{SERIES}\n{STUDY};{OTHER}\n",
        # tab-separated, names with spaces, a blank line
        f"Study Instance UID\tSeries Instance UID\n{STUDY}\t{SERIES}\n\n{STUDY}\t{OTHER}\n",
        # tag numbers as column names, one more column
        f'"(0020,000D)","(0020,000E)",PatientID\n{STUDY},{SERIES},P1\n{STUDY},{OTHER},P1\n',
    ],
    ids=["nbia-metadata", "semicolons", "tabs", "tags"],
)
def test_csv_as_portals_and_spreadsheets_write_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "cohort.csv"
    path.write_bytes(text.encode("utf-8"))
    assert _items(path) == [WorkItem(STUDY, (SERIES, OTHER))]


def test_json_lines_take_the_same_names(tmp_path: Path) -> None:
    path = tmp_path / "cohort.jsonl"
    path.write_text(json.dumps({"Study UID": STUDY, "Series UID": SERIES}) + "\n")
    assert _items(path) == [WorkItem(STUDY, (SERIES,))]


def test_bad_lines_are_named(tmp_path: Path) -> None:
    path = tmp_path / "cohort.csv"
    path.write_text(f"Study UID;Series UID\n{STUDY};{SERIES}\n{STUDY};1.2.x\n")
    with pytest.raises(ConfigError, match=r"cohort.csv:3: '1.2.x' is not a DICOM UID"):
        _items(path)
    path.write_text("PatientID,Modality\nP1,CT\n")
    with pytest.raises(ConfigError, match=r"must name a StudyInstanceUID or Series.*'PatientID'"):
        _items(path)
    path.write_text(f"StudyInstanceUID,SeriesInstanceUID,PatientID\n{STUDY},,P1\n,,P2\n")
    with pytest.raises(ConfigError, match=r"cohort.csv:3: no StudyInstanceUID or Series"):
        _items(path)


def _tcia(path: Path, *series: str) -> Path:
    settings = [
        "downloadServerUrl=https://public.cancerimagingarchive.net/nbia-download/servlet/",
        "includeAnnotation=true",
        "noOfrRetry=4",
        "databasketId=manifest-1700000000000.tcia",
        "manifestVersion=3.0",
        "ListOfSeriesToDownload=",
    ]
    path.write_text("\n".join([*settings, *series]) + "\n")
    return path


def test_series_only_rows_need_a_server(tmp_path: Path) -> None:
    path = _tcia(tmp_path / "cohort.tcia", SERIES)
    with pytest.raises(ConfigError, match=r"cohort.tcia:7: series .* has no StudyInstanceUID"):
        _items(path)
    with pytest.raises(ConfigError, match=r"cohort.tcia:8: '1.2.x' is not a DICOM UID"):
        _items(_tcia(path, SERIES, "1.2.x"))


def test_tcia_manifest_and_series_list_resolved_on_the_server(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    cohort = make_cohort(orthanc, tmp_path / "cohort", 3)
    studies = list(cohort.studies)
    series = [cohort.studies[s] for s in studies]
    # more series than one query takes (50 per query): the rest are repeats of these
    path = _tcia(tmp_path / "cohort.tcia", *(series * 20))
    table = {
        "source": {"kind": "manifest", "path": str(path), "server": "pacs"},
        "steps": [{"kind": "fetch", "server": "pacs"}],
    }
    options = RunOptions(tmp_path / "db", settings_for(orthanc).servers)
    items = list_items(Pipeline.from_dict(table), options)
    assert items == [WorkItem(study, (cohort.studies[study],)) for study in studies]
    # an IDC-style list of series UIDs and one study named whole
    listed = tmp_path / "series.csv"
    listed.write_text(f"SeriesInstanceUID,StudyInstanceUID\n{series[1]},\n,{studies[2]}\n")
    table["source"] = {"kind": "manifest", "path": str(listed), "server": "pacs"}
    items = list_items(Pipeline.from_dict(table), options)
    assert items == [WorkItem(studies[1], (series[1],)), WorkItem(studies[2])]
    # without its own server: the pipeline's fetch step's; the file's table stays as written
    table["source"] = {"kind": "manifest", "path": str(listed)}
    pipeline = Pipeline.from_dict(table)
    assert list_items(pipeline, options) == items
    assert pipeline.to_dict()["source"] == table["source"]
    # a series the server does not have: the run does not start, the line is named
    _tcia(path, series[0], OTHER)
    table["source"] = {"kind": "manifest", "path": str(path), "server": "pacs"}
    with pytest.raises(NotFoundError, match=rf"1 series .* not on pacs .*{OTHER}, .*tcia:8"):
        list_items(Pipeline.from_dict(table), options)
