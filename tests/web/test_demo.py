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


def test_interactive_demo_serves_and_cleans_up_on_sigterm() -> None:
    import re
    import signal
    from pathlib import Path

    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "dicomstation.cli.main", "demo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("open http"):
                break
        text = "".join(lines)
        url = re.search(r"open (http://127\.0\.0\.1:\d+)/\?token=(\S+) in a browser", text)
        folder = re.search(r"local database (\S+)/database", text)
        assert url and folder, text
        assert httpx.get(url.group(1) + "/api/servers", timeout=10).status_code == 401
        login = httpx.get(f"{url.group(1)}/?token={url.group(2)}", timeout=10)
        assert login.status_code == 303 and "httponly" in login.headers["set-cookie"].lower()
        page = httpx.get(url.group(1) + "/", cookies=login.cookies, timeout=10)
        assert page.status_code == 200 and "dicomstation" in page.text
        assert Path(folder.group(1)).exists()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not Path(folder.group(1)).exists(), "the demo's temporary folder is removed"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
