"""Credentials never go to a Dask scheduler over an unencrypted network comm.

A task manifest holds the secrets of the servers its steps name, and Dask sends task
arguments as they are: ``dicomstation run --scheduler tcp://<another host>`` with a
password-protected server must stop before anything is sent, naming the server.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomli_w
from typer.testing import CliRunner

from dicomstation.cli.main import app
from dicomstation.config import Credentials, DicomWebServer, Secret
from dicomstation.errors import ConfigError
from dicomstation.pipeline import Pipeline
from dicomstation.pipeline.dask_executor import check_servers
from dicomstation.pipeline.model import TaskManifest, WorkItem
from dicomstation.settings import Settings

SECRET = "s3cret-never-shown"
STUDY = "1.2.826.0.1.3680043.8.498.4242"
#: TEST-NET-1 (RFC 5737): never a real host; nothing may even try to connect there
REMOTE = "tcp://192.0.2.1:8786"


def _servers(secret: bool) -> dict[str, DicomWebServer]:
    credentials = Credentials(username="u", password=Secret(SECRET)) if secret else Credentials()
    return {"pacs": DicomWebServer("pacs", "https://pacs.example/dicom-web", credentials)}


def _pipeline() -> Pipeline:
    return Pipeline.from_dict(
        {
            "name": "transport",
            "source": {"kind": "manifest", "path": "manifest.csv"},
            "steps": [{"kind": "fetch", "name": "fetch", "server": "pacs"}],
        }
    )


def _manifest(secret: bool) -> TaskManifest:
    return TaskManifest(_pipeline().to_json(), WorkItem(STUDY), servers=_servers(secret))


def test_cli_refuses_a_remote_tcp_scheduler_for_servers_with_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_file = tmp_path / "settings.toml"
    monkeypatch.setenv("DICOMSTATION_CONFIG", str(settings_file))
    monkeypatch.setenv("DICOMSTATION_DB", str(tmp_path / "db"))
    Settings(servers=_servers(secret=True)).save(settings_file)
    (tmp_path / "manifest.csv").write_text(f"StudyInstanceUID\n{STUDY}\n", encoding="utf-8")
    definition = tmp_path / "cohort.toml"
    definition.write_text(tomli_w.dumps(_pipeline().to_dict()), encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(definition), "--scheduler", REMOTE])
    assert result.exit_code != 0
    assert "not encrypted" in result.output and "'pacs'" in result.output, result.output
    assert REMOTE in result.output
    assert SECRET not in result.output
    listed = CliRunner().invoke(app, ["jobs", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == []  # refused before the ledger recorded a job


@pytest.mark.parametrize(
    "address",
    [
        "tcp://10.0.0.5:8786",
        "ucx://10.0.0.5:8786",
        "tcp://scheduler.example:8786",
        "tcp://[2001:db8::1]:8786",
    ],
)
def test_network_comms_in_clear_are_refused(address: str) -> None:
    with pytest.raises(ConfigError, match=r"not encrypted.*'pacs'"):
        check_servers(address, _manifest(secret=True).servers)


@pytest.mark.parametrize(
    "address",
    [
        "tls://10.0.0.5:8786",
        "tcp://127.0.0.1:8786",
        "tcp://127.3.4.5:1",
        "tcp://[::1]:8786",
        "tcp://localhost:8786",
        "inproc://10.0.0.5/1/2",
        "",
    ],
)
def test_encrypted_or_loopback_comms_take_credentials(address: str) -> None:
    check_servers(address, _manifest(secret=True).servers)  # no ConfigError


def test_servers_without_secrets_may_use_any_comm() -> None:
    check_servers("tcp://10.0.0.5:8786", _manifest(secret=False).servers)  # no ConfigError


def test_executor_run_refuses_before_connecting() -> None:
    """Called directly (no driver), the executor checks the manifests' servers itself."""
    from dicomstation.nodes.base import CancelToken
    from dicomstation.pipeline.dask_executor import DaskExecutor

    with pytest.raises(ConfigError, match=r"not encrypted.*'pacs'"):
        DaskExecutor(REMOTE).run([_manifest(secret=True)], lambda _: None, cancel=CancelToken())
