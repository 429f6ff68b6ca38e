"""`dicomstation ui` on a taken port: one clear line before anything else; default port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from dicomstation.cli.common import ExitCode
from dicomstation.cli.ui_cmds import DEFAULT_PORT

# Orthanc (HTTP and DIMSE), dcm4chee/Tomcat, Jupyter, DICOM ports.
COMMON_PACS_PORTS = {8042, 4242, 8080, 8000, 8888, 104, 11112}


def test_the_default_port_is_not_a_common_pacs_port() -> None:
    assert DEFAULT_PORT not in COMMON_PACS_PORTS


def test_a_taken_port_is_one_line_before_anything_is_printed(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = {
            **os.environ,
            "DICOMSTATION_CONFIG": str(tmp_path / "settings.toml"),
            "DICOMSTATION_DB": str(tmp_path / "db"),
        }
        done = subprocess.run(
            [sys.executable, "-m", "dicomstation.cli.main", "ui", "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    assert done.returncode == ExitCode.USAGE, done.stderr
    assert done.stdout == ""  # no URL printed first
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "already in use" in lines[0]
    assert "Errno" not in done.stderr
    assert not (tmp_path / "db").exists()  # nothing opened either
