"""``dicomstation demo --headless`` runs the whole flow and exits 0 (what CI runs)."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from dicomstation.cli.main import app


def test_headless_demo_in_process() -> None:
    result = CliRunner().invoke(app, ["demo", "--headless"])
    assert result.exit_code == 0, result.output
    for step in (
        "QIDO-RS",
        "WADO-RS: fetch",
        "segment bone",
        "DICOM SEG",
        "STOW-RS",
        "the demo PACS now holds SEG series",
        "done in",
    ):
        assert step in result.output


def test_headless_demo_as_a_command_leaves_nothing_running() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "dicomstation.cli.main", "demo", "--headless"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "40 instances" in completed.stdout
