"""``--tls-cert/--tls-key``: the built-in server speaks HTTPS (issue 10: "A TLS option for
the built-in server"), with a self-signed certificate made by the test."""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from dicomstation.config import Secret
from dicomstation.errors import ConfigError
from dicomstation.server import ServerOptions
from dicomstation.server.running import free_port
from tests.security.http_support import cli_env, self_signed, station

TOKEN = "tls-test-token-0123456789-abcdef"


def _trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def test_https_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    options = ServerOptions(token=Secret(TOKEN), tls_cert=cert, tls_key=key)
    with station(tmp_path, options) as st:
        assert st.url.startswith("https://127.0.0.1:")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(verify=_trusting(cert), timeout=10) as client:
            studies = client.get(f"{st.url}/dicom-web/studies", headers=headers)
            assert studies.status_code == 200 and len(studies.json()) == 1
            assert client.get(f"{st.url}/dicom-web/studies").status_code == 401
            login = client.get(f"{st.url}/", params={"token": TOKEN})
            assert login.status_code == 303
            assert "secure" in login.headers["set-cookie"].lower(), "cookie only over TLS"
        with pytest.raises(httpx.ConnectError):  # verification stays on: unknown issuer
            httpx.get(f"{st.url}/dicom-web/studies", headers=headers, timeout=10)
        plain = st.url.replace("https://", "http://")
        with pytest.raises(httpx.HTTPError):  # nothing is served in clear text
            httpx.get(f"{plain}/dicom-web/studies", headers=headers, timeout=10)


def test_incomplete_or_missing_tls_files_are_refused(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with pytest.raises(ConfigError, match="both"):
        ServerOptions(tls_cert=cert).check()
    with pytest.raises(ConfigError, match="does not exist"):
        ServerOptions(tls_cert=cert, tls_key=tmp_path / "missing.pem").check()
    ServerOptions(tls_cert=cert, tls_key=key).check()


def test_ui_command_serves_https(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    args = ["ui", "--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicomstation.cli.main", *args],
        env=cli_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        found = re.fullmatch(rf"UI: (https://127\.0\.0\.1:{port})/\?token=([\w-]+)\n", first)
        assert found, first
        root, token = found.groups()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(verify=_trusting(cert), timeout=10) as client:
            for _attempt in range(100):  # printed just before uvicorn binds
                try:
                    response = client.get(f"{root}/dicom-web/studies", headers=headers)
                    break
                except httpx.ConnectError:
                    assert proc.poll() is None
                    time.sleep(0.1)
            assert response.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)
