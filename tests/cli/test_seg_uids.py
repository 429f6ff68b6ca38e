"""A SEG is accepted by its series UID (what `segment` prints) or its instance UID."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dicomstation.cli.common import ExitCode
from dicomstation.cli.main import app
from dicomstation.database import Database
from dicomstation.models import Level, Query, SeriesRef
from tests.synth import write_ct_series

runner = CliRunner()


@pytest.fixture()
def segmented(tmp_path: Path) -> tuple[Path, str, dict[str, object]]:
    db = tmp_path / "db"
    write_ct_series(tmp_path / "ct", 6, size=24)
    assert (
        runner.invoke(app, ["db", "import", str(tmp_path / "ct"), "--db", str(db)]).exit_code == 0
    )
    with Database.open(db) as database:
        (series,) = database.find(Query(Level.SERIES))
    assert isinstance(series, SeriesRef)
    made = runner.invoke(
        app,
        ["segment", series.series_uid, "--threshold", "-5000", "5000", "--db", str(db), "--json"],
    )
    assert made.exit_code == 0, made.output
    seg = next(r for r in json.loads(made.stdout) if r["kind"] == "seg")
    return db, series.series_uid, seg


def _json(argv: list[str]) -> list[dict[str, object]]:
    result = runner.invoke(app, [*argv, "--json"])
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout))


def test_export_sr_sc_bundle_take_the_seg_series_uid(
    segmented: tuple[Path, str, dict[str, object]],
) -> None:
    db, ct, seg = segmented
    seg_series = str(seg["series_uid"])
    (seg_instance,) = seg["sop_uids"]  # type: ignore[misc]
    by_series = _json(["export", "sr", seg_series, "--db", str(db)])
    by_instance = _json(["export", "sr", str(seg_instance), "--db", str(db)])
    assert [r["kind"] for r in by_series] == ["sr"]
    assert by_series == by_instance  # one SEG, one record, however it is named
    (sc,) = _json(["export", "sc", ct, "--seg", seg_series, "--db", str(db)])
    (bundle,) = _json(["export", "bundle", ct, "--seg", seg_series, "--db", str(db)])
    assert sc["kind"] == "sc" and bundle["kind"] == "bundle"
    with Database.open(db) as database:
        numbers = [
            r.series_number
            for r in database.find(Query(Level.SERIES, study_uid=None))
            if isinstance(r, SeriesRef)
        ]
    assert len(numbers) == len(set(numbers)), numbers  # new series numbers are free in the study


def test_an_unknown_seg_uid_is_named(segmented: tuple[Path, str, dict[str, object]]) -> None:
    db, ct, _seg = segmented
    for argv in (["export", "sr", "1.2.3.4"], ["export", "sc", ct, "--seg", "1.2.3.4"]):
        result = runner.invoke(app, [*argv, "--db", str(db)])
        assert result.exit_code == ExitCode.NOTHING_DONE, result.output
        assert "1.2.3.4: no such series or instance" in result.stderr
