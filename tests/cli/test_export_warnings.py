"""Exports print no highdicom UserWarning, and the CLI changes no global warning filter."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dicomstation.cli.main import app
from tests.synth import write_ct_series


def test_parametric_map_prints_no_highdicom_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DICOMSTATION_CONFIG", str(tmp_path / "settings.toml"))
    monkeypatch.setenv("DICOMSTATION_DB", str(tmp_path / "db"))
    write_ct_series(tmp_path / "ct", 4, size=16)
    runner = CliRunner()
    assert runner.invoke(app, ["db", "import", str(tmp_path / "ct")]).exit_code == 0
    listed = runner.invoke(app, ["db", "ls", "--level", "series", "--json"])
    series_uid = json.loads(listed.stdout)[0]["0020000E"]["Value"][0]
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = runner.invoke(
            app, ["export", "derived", series_uid, "--parametric-map", "--smooth", "1"]
        )
    assert result.exit_code == 0, result.output
    assert "pm: series" in result.stdout
    assert "UserWarning" not in result.stderr and "deprecated" not in result.stderr
    assert not [w for w in caught if "window_center" in str(w.message)]
    assert list(warnings.filters) == before
