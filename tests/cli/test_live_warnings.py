"""The CLI prints a command's warnings as they occur, bounded, and restores the warnings state.

A cohort run lasts hours: a warning raised by its first study must show while the
run goes on (not only when it ends), a text repeated for every instance must show
once with its count, and a run whose warnings all differ (a UID in each) must not
flood the terminal or keep every text in memory. Texts come from files and peers:
control characters (a terminal escape) are never written.
"""

from __future__ import annotations

import threading
import warnings

import pytest

from dicomstation.cli import warning_printer
from dicomstation.cli.common import printed_warnings


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
