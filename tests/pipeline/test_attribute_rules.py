"""Series selection on any DICOM attribute, as MONAI Deploy's selector conditions are written.

A MONAI Deploy user writes ``{"BodyPartExamined": "(?i)chest", "SliceThickness": [0.5, 2.5]}``;
``select`` took only modality, description, image_type and min_slices and refused the
rest. Checked on a real database on disk and on a real Orthanc (WADO-RS metadata).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from dicomstation.database import Database
from dicomstation.errors import ConfigError
from dicomstation.pipeline import SeriesSelector, WorkItem
from dicomstation.pipeline.attribute_rules import AttributeRule
from tests.dicomweb.conftest import make_node
from tests.peers import OrthancServer
from tests.synth import write_ct_series


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[float, str], list[Path]]:
    """One study: series of 1 mm and of 2.5 mm slices (uid by thickness) and their files."""
    folder, study_uid = tmp_path_factory.mktemp("attr"), str(generate_uid())
    series: dict[float, str] = {}
    files: list[Path] = []
    for thickness in (1.0, 2.5):
        uid = str(generate_uid())
        series[thickness] = uid
        files += write_ct_series(
            folder / str(thickness), 4, size=16, study_uid=study_uid, series_uid=uid,
            spacing=thickness,
        )  # fmt: skip
    return study_uid, series, files


_RULES = [
    ({"SliceThickness": [2, 3]}, [2.5]),
    ({"SliceThickness": 1}, [1.0]),
    ({"SliceThickness": [3, 2]}, [2.5]),  # the range's ends in either order
    ({"Manufacturer": "DICOMSTATION"}, [1.0, 2.5]),  # searched, case-insensitive
    ({"Manufacturer": "^tests"}, []),
    ({"ImageType": ["original", "AXIAL"]}, [1.0, 2.5]),
    ({"ImageType": ["LOCALIZER"]}, []),
    ({"PatientName": "synth"}, [1.0, 2.5]),  # a person name: its alphabetic form
    ({"BodyPartExamined": "chest"}, []),  # absent: no match where the headers are local
    ({"modality": ["CT"], "SliceThickness": [0, 1.5], "min_slices": 4}, [1.0]),
]


@pytest.mark.parametrize(("table", "kept"), _RULES)
def test_rules_on_the_local_database(
    tmp_path: Path, study: tuple[str, dict[float, str], list[Path]], table: dict, kept: list
) -> None:
    study_uid, series, files = study
    with Database.open(tmp_path / "db") as db:
        db.import_path(files, copy=True)
        found = SeriesSelector.from_table(table).local(db, WorkItem(study_uid))
    assert sorted(found) == sorted(series[t] for t in kept)


@pytest.mark.parametrize(("table", "kept"), _RULES)
def test_rules_on_a_server(
    orthanc: OrthancServer,
    study: tuple[str, dict[float, str], list[Path]],
    table: dict,
    kept: list,
) -> None:
    study_uid, series, files = study
    orthanc.upload(*files)
    if "BodyPartExamined" in table:  # absent from the server's metadata: passes there
        kept = [1.0, 2.5]
    with make_node(orthanc) as node:
        found = SeriesSelector.from_table(table).remote(node, WorkItem(study_uid))
    assert sorted(found) == sorted(series[t] for t in kept)


def test_rules_round_trip_and_refusals() -> None:
    table = {"SliceThickness": [0.5, 2.5], "BodyPartExamined": "chest", "ImageType": ["ORIGINAL"]}
    selector = SeriesSelector.from_table({"modality": ["CT"], **table})
    assert SeriesSelector.from_table(selector.to_dict()) == selector
    assert selector.to_dict() == {"modality": ["CT"], **table}
    assert SeriesSelector.from_table({}).empty and not selector.empty
    with pytest.raises(ConfigError, match=r"unknown series selection rule.*'modalty'"):
        SeriesSelector.from_table({"modalty": "CT"})
    with pytest.raises(ConfigError, match=r"unknown series selection rule.*'BodyPart'"):
        SeriesSelector.from_table({"BodyPart": "chest"})  # not a DICOM keyword
    for bad in ([1, 2, 3], [], True, {"a": 1}, [1, "x"]):
        with pytest.raises(ConfigError, match="select SliceThickness"):
            AttributeRule.parse("SliceThickness", bad)
    with pytest.raises(ConfigError, match=r"select SeriesDescription = '\(': "):
        AttributeRule.parse("SeriesDescription", "(")
