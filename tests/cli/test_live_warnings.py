"""The CLI prints a command's warnings as they occur, bounded, and restores the warnings state.

A cohort run lasts hours: a warning raised by its first study must show while the
run goes on (not only when it ends), a text repeated for every instance must show
once with its count, and a run whose warnings all differ (a UID in each) must not
flood the terminal or keep every text in memory. Texts come from files and peers:
control characters (a terminal escape) are never written.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pydicom
import pytest

from dicomstation.cli import warning_printer
from dicomstation.cli.common import printed_warnings
from dicomstation.database import Database
from tests.volumes.synth import make_series


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_a_warning_shows_while_the_command_still_runs(capsys: pytest.CaptureFixture[str]) -> None:
    with printed_warnings():
        warnings.warn("slice spacing is irregular in series 1.2.3", stacklevel=1)
        during = capsys.readouterr().err
        warnings.warn("slice spacing is irregular in series 1.2.3", stacklevel=1)
        warnings.warn("slice spacing is irregular in series 1.2.3", stacklevel=1)
    after = capsys.readouterr().err
    assert _lines(during) == ["warning slice spacing is irregular in series 1.2.3"]
    # a repeat is not printed again when it occurs, only counted at the end
    assert _lines(after) == ["warning (3 times in all) slice spacing is irregular in series 1.2.3"]


def test_distinct_texts_are_bounded_and_counted(capsys: pytest.CaptureFixture[str]) -> None:
    shown, total = warning_printer.SHOWN, 3000

    def warn_many(start: int) -> None:
        for index in range(start, total, 2):
            warnings.warn(f"instance 1.2.{index}: odd value", stacklevel=1)

    with printed_warnings():
        threads = [threading.Thread(target=warn_many, args=(k,)) for k in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    lines = _lines(capsys.readouterr().err)
    assert len(lines) == shown + 1
    assert all(line.startswith("warning instance 1.2.") for line in lines[:shown])
    assert lines[-1] == f"warning {total - shown:,} more warnings not shown (other texts)"


def test_control_characters_never_reach_the_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with printed_warnings():
        warnings.warn("bad name \x1b[2J\x1b]0;owned\x07 in 1.2.3 [bold]x[/]", stacklevel=1)
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert _lines(err) == ["warning bad name ?[2J?]0;owned? in 1.2.3 [bold]x[/]"]


def test_the_warnings_state_is_restored() -> None:
    filters, show = list(warnings.filters), warnings.showwarning
    with pytest.raises(KeyError), printed_warnings():
        warnings.warn("inside", stacklevel=1)
        raise KeyError("the command failed")
    assert list(warnings.filters) == filters and warnings.showwarning is show


def _geometry_free_db(tmp_path: Path) -> tuple[Path, str]:
    """A database of one CT image without patient geometry (every load warns)."""
    (path,) = make_series(tmp_path / "in", n=1)
    ds = pydicom.dcmread(path)
    del ds.ImagePositionPatient, ds.ImageOrientationPatient
    ds.SeriesDescription = "bad \x1b[2J name"
    ds.save_as(path)
    with Database.open(tmp_path / "db") as db:
        db.import_path([path], copy=True)
    return tmp_path / "db", str(ds.SeriesInstanceUID)


@pytest.mark.parametrize(
    ("command", "options"),
    [
        (["export", "sc"], []),
        (["export", "derived"], ["--smooth", "1"]),
        (["segment"], ["--threshold", "0", "9"]),
        (["load"], ["--to", "out.nii.gz"]),
    ],
)
def test_every_command_prints_its_warnings_as_warnings(
    tmp_path: Path, command: list[str], options: list[str]
) -> None:
    """No command lets Python print a warning itself (file:line, source line, raw text)."""
    db, series = _geometry_free_db(tmp_path)
    env = {**os.environ, "DICOMSTATION_CONFIG": str(tmp_path / "s.toml"), "COLUMNS": "300"}
    options = [str(tmp_path / o) if o.endswith(".gz") else o for o in options]
    argv = [sys.executable, "-m", "dicomstation.cli.main", *command, series, *options]
    done = subprocess.run([*argv, "--db", str(db)], capture_output=True, text=True, env=env,
                          timeout=120, check=False)  # fmt: skip
    lines = _lines(done.stderr)
    warned = [line for line in lines if line.startswith(("warning ", "warning: "))]
    assert any("patient geometry" in line for line in warned), lines
    assert not [line for line in lines if "Warning:" in line or ".py:" in line], lines
    assert "\x1b" not in done.stderr


def test_a_servers_warnings_are_never_hidden(capsys: pytest.CaptureFixture[str]) -> None:
    """`ui` and `listen` run for days: their later warnings must show, not only be counted."""
    total = warning_printer.SHOWN + 20
    with printed_warnings(keep_filters=True), warnings.catch_warnings():
        warnings.simplefilter("default")  # what a command's filters usually are
        for index in range(total):
            warnings.warn(f"association {index}: odd PDU", stacklevel=1)
    lines = _lines(capsys.readouterr().err)
    assert lines == [f"warning association {n}: odd PDU" for n in range(total)], lines[-3:]
