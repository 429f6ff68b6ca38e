"""`dicomstation ui` prints the OHIF URL beside the UI URL, or how to install OHIF.

A real ``dicomstation ui`` subprocess on a free loopback port, with the user data
dir (where ``dicomstation viewer install`` puts OHIF) pointed at a temporary
folder: empty, the line says how to install it; holding an installed viewer, the
line gives ``/viewer/`` of the UI's origin, which Chromium opens after signing in
with the UI URL printed on the line above. Screenshot in ``test-artifacts/browser/``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dicomstation.web.ohif import INSTALL_HINT, MARKER, OHIF_VERSION
from tests.peers import free_port
from tests.web.browser_support import artifacts, chromium_context

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

ARTIFACTS = artifacts("browser")


def _printed(tmp_path: Path, data_home: Path) -> tuple[list[str], subprocess.Popen[bytes], int]:
    """Start the UI; the lines it printed once the OHIF line is out (the process runs on)."""
    port = free_port()
    log = tmp_path / f"ui-{port}.log"
    env = {
        **os.environ,
        "XDG_DATA_HOME": str(data_home),
        "DICOMSTATION_CONFIG": str(tmp_path / "settings.toml"),
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "300",
    }
    command = [sys.executable, "-m", "dicomstation.cli.main", "ui", "--db", str(tmp_path / "db")]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    deadline = time.monotonic() + 60
    while "OHIF viewer:" not in log.read_text(errors="replace"):
        assert process.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.1)
    return log.read_text().splitlines(), process, port


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=20)


def test_without_ohif_ui_says_how_to_install_it(tmp_path: Path) -> None:
    lines, process, port = _printed(tmp_path, tmp_path / "empty-data")
    try:
        assert any(line.startswith(f"UI: http://127.0.0.1:{port}/?token=") for line in lines)
        assert f"OHIF viewer: {INSTALL_HINT}" in lines, lines
    finally:
        _stop(process)


def test_with_ohif_ui_prints_its_url_and_it_opens(tmp_path: Path) -> None:
    from playwright.sync_api import expect

    folder = tmp_path / "data" / "dicomstation" / "ohif" / OHIF_VERSION
    folder.mkdir(parents=True)
    (folder / MARKER).write_text(json.dumps({"version": OHIF_VERSION}))
    (folder / "index.html").write_text(
        "<!doctype html><title>OHIF Viewer</title><p id=ohif>installed viewer</p>"
    )
    lines, process, port = _printed(tmp_path, tmp_path / "data")
    try:
        ui = next(line.split(" ", 1)[1] for line in lines if line.startswith("UI: "))
        ohif = next(line for line in lines if line.startswith("OHIF viewer: "))
        assert re.fullmatch(
            rf"OHIF viewer: http://127\.0\.0\.1:{port}/viewer/ \(OHIF {re.escape(OHIF_VERSION)};"
            r" open the UI link first to sign in\)",
            ohif,
        ), ohif
        with chromium_context((1200, 800)) as context:
            page = context.new_page()
            page.goto(ui)  # the login URL sets the token cookie
            page.goto(ohif.split(" ")[2])
            expect(page.locator("#ohif")).to_have_text("installed viewer")
            page.screenshot(path=str(ARTIFACTS / "04-ohif-url-printed.png"))
    finally:
        _stop(process)
