"""Every command given bad input: one line naming what was wrong, the documented exit code.

Exit codes (README, ``cli.common.ExitCode``): 0 done, 1 partly failed, 2 usage error,
3 nothing done, 4 internal error. Servers are real sockets on loopback: a port that was
just closed (nothing listens) for DICOMweb and DIMSE. No traceback may reach the user.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dicomstation.cli.common import ExitCode
from dicomstation.cli.main import app
from tests.synth import write_ct_series

UNKNOWN = "1.2.826.0.1.3680043.8.498.999999"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.setenv("DICOMSTATION_CONFIG", str(tmp_path / "cfg" / "settings.toml"))
    monkeypatch.setenv("DICOMSTATION_DB", str(tmp_path / "db"))
    web, dimse = _closed_port(), _closed_port()
    runner = CliRunner()
    added = runner.invoke(app, ["server", "add", "web", "--url", f"http://127.0.0.1:{web}/dw"])
    assert added.exit_code == 0, added.output
    added = runner.invoke(
        app, ["server", "add", "dim", "--ae", "PEER", "--host", "127.0.0.1", "--port", str(dimse)]
    )
    assert added.exit_code == 0, added.output
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not DICOM")
    (junk / "cut.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    return {"tmp": tmp_path, "web": web, "dimse": dimse, "junk": junk}


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "no error message at all"
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


# (argv, expected exit code, strings the one error line must contain)
CASES: list[tuple[list[str], ExitCode, tuple[str, ...]]] = [
    (["query", "web", "--level", "seris"], ExitCode.USAGE, ("--level", "seris")),
    (["db", "ls", "--level", "seris"], ExitCode.USAGE, ("--level", "seris")),
    (["db", "import", "/nonexistent/dir"], ExitCode.USAGE, ("/nonexistent/dir",)),
    (["send", "web", "/nonexistent/path"], ExitCode.USAGE, ("/nonexistent/path",)),
    (["query", "nosuch"], ExitCode.USAGE, ("unknown server 'nosuch'",)),
    (["query", "web", "--filter", "StudyDate"], ExitCode.USAGE, ("KEY=VALUE",)),
    (["query", "web"], ExitCode.NOTHING_DONE, ("web",)),
    (["metadata", "web", UNKNOWN], ExitCode.NOTHING_DONE, ("web", UNKNOWN)),
    (["fetch", "web", UNKNOWN], ExitCode.NOTHING_DONE, ("web",)),
    (["query", "dim"], ExitCode.NOTHING_DONE, ("dim", "connection refused")),
    (["fetch", "dim", UNKNOWN], ExitCode.NOTHING_DONE, ("dim", "connection refused")),
    (["db", "show", UNKNOWN], ExitCode.NOTHING_DONE, (UNKNOWN,)),
    (["db", "rm", UNKNOWN], ExitCode.NOTHING_DONE, (UNKNOWN,)),
    (["load", UNKNOWN], ExitCode.NOTHING_DONE, (UNKNOWN,)),
    (["segment", UNKNOWN, "--threshold", "100", "200"], ExitCode.NOTHING_DONE, (UNKNOWN,)),
    (["export", "sr", UNKNOWN], ExitCode.NOTHING_DONE, (UNKNOWN,)),
    (["export", "derived", UNKNOWN], ExitCode.NOTHING_DONE, (UNKNOWN,)),
    (["send", "web", UNKNOWN], ExitCode.NOTHING_DONE, (UNKNOWN,)),
]


@pytest.mark.parametrize(("argv", "code", "needles"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_one_line_and_the_right_exit_code(
    env: dict[str, object], argv: list[str], code: ExitCode, needles: tuple[str, ...]
) -> None:
    result = CliRunner().invoke(app, argv)
    assert "Traceback" not in result.output + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, (result.exit_code, result.output)
    line = _error_line(result.stderr)
    for needle in needles:
        assert needle in line, (needle, line)
    assert "None" not in result.stderr  # no "0/None instances" progress


def test_closed_dimse_port_names_host_port_and_cause_quickly(env: dict[str, object]) -> None:
    started = time.monotonic()
    result = CliRunner().invoke(app, ["server", "echo", "dim"])
    seconds = time.monotonic() - started
    line = _error_line(result.stderr)
    assert result.exit_code == ExitCode.NOTHING_DONE
    assert f"127.0.0.1:{env['dimse']}" in line and "connection refused" in line, line
    assert seconds < 10, seconds


def test_a_folder_of_junk_imports_nothing_and_says_so(env: dict[str, object]) -> None:
    result = CliRunner().invoke(app, ["db", "import", str(env["junk"])])
    assert result.exit_code == ExitCode.NOTHING_DONE, result.output
    assert "notes.txt" in result.stderr and "cut.dcm" in result.stderr
    assert "imported 0" in result.stdout


def test_partly_imported_is_exit_code_one(env: dict[str, object]) -> None:
    folder = env["junk"]
    assert isinstance(folder, Path)
    write_ct_series(folder / "ct", 2, size=16)
    result = CliRunner().invoke(app, ["db", "import", str(folder)])
    assert result.exit_code == ExitCode.PARTLY_FAILED, result.output
    assert "imported 2" in result.stdout


def test_load_errors_do_not_leak_pydicom_advice(env: dict[str, object]) -> None:
    junk = env["junk"]
    assert isinstance(junk, Path)
    result = CliRunner().invoke(app, ["load", str(junk / "cut.dcm")])
    assert result.exit_code == ExitCode.NOTHING_DONE, result.output
    line = _error_line(result.stderr)
    assert "cut.dcm" in line and "force=True" not in line, line


def _all_commands() -> list[list[str]]:
    import typer.main

    group = typer.main.get_command(app)
    found: list[list[str]] = []
    ctx = group.make_context("dicomstation", [], resilient_parsing=True)
    for name in group.list_commands(ctx):  # type: ignore[attr-defined]
        command = group.get_command(ctx, name)  # type: ignore[attr-defined]
        subs = getattr(command, "list_commands", None)
        if subs is None:
            found.append([name])
            continue
        sub_ctx = command.make_context(name, [], resilient_parsing=True)
        found += [[name, sub] for sub in subs(sub_ctx)]
    return found


def test_help_texts_carry_no_rest_markup(env: dict[str, object]) -> None:
    commands = _all_commands()
    assert len(commands) > 20
    for argv in commands:
        result = CliRunner().invoke(app, [*argv, "--help"], terminal_width=200)
        assert result.exit_code == 0, (argv, result.output)
        assert "``" not in result.output and ":func:" not in result.output, argv
