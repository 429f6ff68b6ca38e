"""A pipeline file's values of the wrong type are one-line errors naming the key, never taken.

`per_series = "no"` was taken as true (a non-empty string), `limit = "5"` passed until the
query, and `filters = "CT"` or an unknown key gave Python's own words (``__init__() got
an unexpected keyword argument``, ``'str' object has no attribute 'items'``).
"""

from __future__ import annotations

from typing import Any

import pytest

from dicomstation.errors import ConfigError
from dicomstation.pipeline import Pipeline

LOAD = [{"kind": "load"}]


def _table(source: dict[str, Any], run: dict[str, Any] | None = None, steps: Any = LOAD) -> Any:
    table: dict[str, Any] = {"name": "types", "source": source, "steps": steps}
    if run is not None:
        table["run"] = run
    return table


@pytest.mark.parametrize(
    ("table", "named"),
    [
        (_table({"kind": "local", "per_series": "no"}), "per_series"),
        (_table({"kind": "local", "limit": "5"}), "limit"),
        (_table({"kind": "local", "limit": 2.5}), "limit"),
        (_table({"kind": "local", "filters": "CT"}), "filters"),
        (_table({"kind": "local", "filters": {"Modality": ["CT"]}}), "filters"),
        (_table({"kind": "local", "bogus": 1}), "bogus"),
        (_table({"kind": "local", "limit": 0}), "limit"),
        (_table({"kind": "items", "items": "1.2.3"}), "items"),
        (_table({"kind": "items", "items": ["../../etc"]}), "../../etc"),
        (_table({"kind": "items", "items": ["1.2.3/4.5,x"]}), "'x'"),
        (_table({"kind": "query", "server": 3}), "server"),
        (_table({"kind": "query"}), "server"),
        (_table({"kind": "manifest", "path": "m.csv", "per_series": 1}), "per_series"),
        (_table({"kind": "local"}, {"concurrency": "2"}), "concurrency"),
        (_table({"kind": "local"}, {"attempts": True}), "attempts"),
        (_table({"kind": "local"}, {"bogus": 1}), "bogus"),
        (_table({"kind": "local"}, steps=[{"kind": "load", "select": {"min_slices": "a"}}]),
         "min_slices"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_by_name(table: Any, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        Pipeline.from_dict(table)
    message = str(info.value)
    assert named in message and "\n" not in message, message
    for internal in ("__init__", "has no attribute", "not supported between", "invalid literal"):
        assert internal not in message, message


def test_values_of_the_right_types_are_taken() -> None:
    pipeline = Pipeline.from_dict(
        _table(
            {"kind": "local", "level": "series", "per_series": True, "limit": 5,
             "filters": {"Modality": "CT", "SeriesNumber": 3}},
            {"concurrency": 4, "attempts": 2, "workspace": "temporary"},
            [{"kind": "load", "select": {"min_slices": 10}}],
        )
    )  # fmt: skip
    assert pipeline.settings.concurrency == 4 and pipeline.source.to_dict()["limit"] == 5
    assert pipeline.source.to_dict()["filters"] == {"Modality": "CT", "SeriesNumber": "3"}


SEGMENT = [{"kind": "load"}, {"kind": "segment", "params": {"threshold": [100, 3000]}}]


@pytest.mark.parametrize(
    ("steps", "named"),
    [
        ([{"kind": "load"}, {"kind": "segment", "params": "x"}], "params"),
        ([{"kind": "load"}, {"kind": "segment"}], "threshold"),
        ([{"kind": "load"}, {"kind": "segment", "params": {"threshold": [1]}}], "threshold"),
        ([{"kind": "load"}, {"kind": "segment", "params": {"threshold": ["a", 2]}}], "threshold"),
        ([{"kind": "load"}, {"kind": "segment", "params": {"threshold": [1, 2],
                                                            "largest": "no"}}], "largest"),
        ([{"kind": "load"}, {"kind": "segment", "params": {"threshold": [1, 2],
                                                            "larges": True}}], "larges"),
        ([*SEGMENT, {"kind": "export", "kinds": ["seg"]}, {"kind": "send", "server": "pacs",
                                                          "what": 5}], "what"),
        ([*SEGMENT, {"kind": "send", "server": "pacs", "what": "export"}], "export"),
        ([{"kind": "deid", "key_file": "/k", "options": "retain-uids"}], "options"),
        ([{"kind": "load"}, {"kind": "segment", "segmenter": "grow_from_seeds"}], "seeds"),
        ([{"kind": "load"}, {"kind": "segment", "segmenter": "grow_from_seeds",
                             "params": {"seeds": [[1, 2, 3]]}}], "seeds"),
        ([{"kind": "load"}, {"kind": "segment", "segmenter": "grow_from_seeds",
                             "params": {"seeds": [[1, 2, 3, 1]], "patient": "yes"}}], "patient"),
    ],
)  # fmt: skip
def test_a_step_value_of_the_wrong_type_is_refused_by_name(steps: Any, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        Pipeline.from_dict(_table({"kind": "local"}, steps=steps))
    message = str(info.value)
    assert named in message and "\n" not in message, message
    for internal in ("dictionary update", "unpack", "could not convert", "{}: '"):
        assert internal not in message, message
