"""Federated query and fetch-from-any against two real Orthancs and one unreachable server.

Orthanc ``a`` holds studies SHARED (patient name FIRST^A, no StudyDescription) and
ONLY_A; Orthanc ``b`` holds the same SHARED instances (patient name SECOND^B, a
StudyDescription) and ONLY_B; ``down`` is a DICOMweb URL on a closed loopback port.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from dicomstation import Database, DicomWebServer, Level, Query, StudyRef, open_node
from dicomstation.cli.common import ExitCode
from dicomstation.cli.main import app
from dicomstation.config import Credentials, Secret, origin_of
from dicomstation.nodes.federated import federated_find, pick_holder
from tests.peers import OrthancServer, start_orthanc
from tests.synth import write_ct_series

runner = CliRunner()


@dataclass(frozen=True)
class Peers:
    a: OrthancServer
    b: OrthancServer
    shared: str
    only_a: str
    only_b: str
    down_port: int


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _series(folder: Path, count: int, **tags: str) -> tuple[str, list[Path]]:
    paths = write_ct_series(folder, count, size=8)
    for path in paths:
        ds = pydicom.dcmread(path)
        for keyword, value in tags.items():
            if value:
                setattr(ds, keyword, value)
            elif keyword in ds:
                delattr(ds, keyword)
        ds.save_as(path, enforce_file_format=True)
    return str(pydicom.dcmread(paths[0]).StudyInstanceUID), paths


@pytest.fixture(scope="module")
def peers(orthanc: OrthancServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peers]:
    second = start_orthanc(tmp_path_factory.mktemp("orthanc_b"))
    try:
        orthanc.clear()
        data = tmp_path_factory.mktemp("federated")
        shared, files = _series(data / "shared", 3, PatientName="FIRST^A", StudyDescription="")
        orthanc.upload(*files)
        for path in files:  # the same instances on b, with other study attributes
            ds = pydicom.dcmread(path)
            ds.PatientName, ds.StudyDescription = "SECOND^B", "Described on b"
            ds.save_as(path, enforce_file_format=True)
        second.upload(*files)
        only_a, files_a = _series(data / "a", 2, PatientName="ONLY^A")
        orthanc.upload(*files_a)
        only_b, files_b = _series(data / "b", 2, PatientName="ONLY^B")
        second.upload(*files_b)
        yield Peers(orthanc, second, shared, only_a, only_b, _closed_port())
    finally:
        second.stop()
        shutil.rmtree(second.workdir, ignore_errors=True)


def _ok(*argv: str, stdin: str | None = None, code: int = 0) -> tuple[str, str]:
    result = runner.invoke(app, list(argv), input=stdin)
    assert result.exit_code == code, result.output
    return result.stdout, result.stderr


@pytest.fixture()
def cli(peers: Peers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings with servers a, b (default) and down; returns the database folder."""
    monkeypatch.setenv("DICOMSTATION_CONFIG", str(tmp_path / "settings.toml"))
    monkeypatch.setenv("DICOMSTATION_DB", str(tmp_path / "db"))
    for name, peer in (("a", peers.a), ("b", peers.b)):
        _ok("server", "add", name, "--url", peer.dicomweb_url, "--user", peer.user,
            "--password-stdin", stdin=peer.password + "\n")  # fmt: skip
    _ok("server", "add", "down", "--url", f"http://127.0.0.1:{peers.down_port}/dicom-web")
    _ok("server", "edit", "b", "--default")
    return tmp_path / "db"


def _rows(stdout: str) -> dict[str, dict[str, object]]:
    return {row["uid"]: row for row in json.loads(stdout)}


def _name(row: dict[str, object]) -> str:
    element = row["json"]["00100010"]  # type: ignore[index]
    return str(element["Value"][0]["Alphabetic"])


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: server")]


def test_named_servers_merged_deduplicated_with_servers_and_a_warning(
    cli: Path, peers: Peers
) -> None:
    stdout, stderr = _ok(
        "query",
        "a",
        "b",
        "down",
        "--include",
        "StudyDescription",
        "--json",
        code=ExitCode.PARTLY_FAILED,
    )
    rows = _rows(stdout)
    assert set(rows) == {peers.shared, peers.only_a, peers.only_b}  # SHARED once
    assert rows[peers.shared]["servers"] == ["a", "b"]
    assert rows[peers.only_a]["servers"] == ["a"] and rows[peers.only_b]["servers"] == ["b"]
    shared = rows[peers.shared]
    assert _name(shared) == "FIRST^A"  # the first server's non-empty value is kept
    description = shared["json"]["00081030"]  # type: ignore[index]
    assert description["Value"] == ["Described on b"]  # empty on a: filled from b
    (warning,) = _warnings(stderr)
    assert warning.startswith("warning: server down:") and "refused" in warning.lower()
    assert "Traceback" not in stderr


def test_all_asks_the_default_server_first_and_shows_a_servers_column(
    cli: Path, peers: Peers
) -> None:
    stdout, stderr = _ok("query", "--all", "--json", code=ExitCode.PARTLY_FAILED)
    shared = _rows(stdout)[peers.shared]
    assert shared["servers"] == ["b", "a"] and _name(shared) == "SECOND^B"
    assert len(_warnings(stderr)) == 1
    table, _ = _ok("query", "a", "b", "--level", "series", "--study", peers.shared)
    assert "Servers" in table and "a, b" in table  # one series row, held by both
    assert table.count("Axial") == 1


def test_every_server_failing_is_nothing_done(cli: Path, peers: Peers) -> None:
    _ok("server", "add", "down2", "--url", f"http://127.0.0.1:{_closed_port()}/dicom-web")
    _, stderr = _ok("query", "down", "down2", code=ExitCode.NOTHING_DONE)
    assert len(_warnings(stderr)) == 2
    _, stderr = _ok("query", "a", "nosuch", code=ExitCode.USAGE)
    assert "nosuch" in stderr


def test_fetch_without_a_server_picks_a_holder_and_says_which(cli: Path, peers: Peers) -> None:
    _, stderr = _ok("fetch", peers.only_a)
    assert f"fetching study {peers.only_a} from a" in stderr
    _, stderr = _ok("fetch", "--from-any", peers.shared)
    assert "from b (also on a)" in stderr  # the default server first
    with Database.open(cli) as db:
        studies = {s.study_uid: s for s in db.find(Query(Level.STUDY))}
        assert set(studies) == {peers.only_a, peers.shared}
        assert len(db.study_files(peers.shared)) == 3 and len(db.study_files(peers.only_a)) == 2
    unknown = "1.2.826.0.1.3680043.8.498.424242"
    _, stderr = _ok("fetch", unknown, code=ExitCode.NOTHING_DONE)
    error = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and unknown in error[0] and "down" in error[0]
    _, stderr = _ok("fetch", "b", code=ExitCode.USAGE)  # a server name is not a UID
    assert "'b' is not a study UID" in stderr


def test_federated_find_from_python(peers: Peers) -> None:
    def server(name: str, peer: OrthancServer) -> DicomWebServer:
        creds = Credentials(
            username=peer.user, password=Secret(peer.password), origin=origin_of(peer.url)
        )
        return DicomWebServer(name, peer.dicomweb_url, credentials=creds)

    configs = {
        "b": server("b", peers.b),
        "a": server("a", peers.a),
        "down": DicomWebServer("down", f"http://127.0.0.1:{peers.down_port}/dicom-web"),
    }
    result = federated_find(list(configs), Query(Level.STUDY), lambda n: open_node(configs[n]))
    studies: list[StudyRef] = result.of_type(StudyRef)
    assert sorted(s.study_uid for s in studies) == sorted(
        [peers.shared, peers.only_a, peers.only_b]
    )
    assert list(result.failed) == ["down"] and result.answered == ("b", "a")
    name, holders = pick_holder(["down", "a", "b"], peers.shared, lambda n: open_node(configs[n]))
    assert name == "a" and holders.rows[0].servers == ("a", "b")


def test_dicomweb_and_dimse_answers_merge_into_one_row(cli: Path, peers: Peers) -> None:
    port = str(peers.a.dicom_port)
    _ok("server", "add", "a-dimse", "--ae", peers.a.aet, "--host", "127.0.0.1", "--port", port)
    stdout, stderr = _ok("query", "a-dimse", "a", "--json")
    rows = _rows(stdout)
    assert set(rows) == {peers.shared, peers.only_a} and not _warnings(stderr)
    assert rows[peers.shared]["servers"] == ["a-dimse", "a"]
