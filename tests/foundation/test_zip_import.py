"""Importing zip archives, as a PACS's "download study", Orthanc's archive and TCIA hand them out.

Before, ``dicomstation db import study.zip`` reported the archive as "not DICOM" and
imported nothing (Slicer and Orthanc import such archives). A real database on disk;
archives made here with ``zipfile`` from synthetic CT slices and pydicom's test files.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dicomstation.cli.common import ExitCode
from dicomstation.cli.main import app
from dicomstation.database import Database, archives
from dicomstation.models import Level, Query
from tests.synth import write_ct_series


def _zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        archive.writestr("DICOM/", b"")  # a folder entry
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.fixture()
def slices(tmp_path: Path) -> dict[str, bytes]:
    """Ten CT slices of one series, as zip members in folders."""
    files = write_ct_series(tmp_path / "ct", 10, size=16)
    return {f"DICOM/S1/IM{n:04d}": f.read_bytes() for n, f in enumerate(files)}


def _incoming(db: Path) -> list[Path]:
    return [p for p in (db / "incoming").rglob("*") if p.is_file()]


def test_members_imported_and_the_rest_reported(tmp_path: Path, slices: dict[str, bytes]) -> None:
    inner = _zip(tmp_path / "inner.zip", {"x.dcm": next(iter(slices.values()))})
    members = {
        **slices,
        "README.txt": b"exported by a PACS",
        "nested/inner.zip": inner.read_bytes(),
        "../../escape.dcm": b"not DICOM either",  # a name from the archive never names a path
    }
    archive = _zip(tmp_path / "study.zip", members)
    with Database.open(tmp_path / "db") as db:
        report = db.import_path(archive)
        assert len(report.succeeded) == 10
        assert all(name.startswith(f"{archive}:DICOM/S1/IM") for name in report.succeeded)
        assert set(report.failed) == {
            f"{archive}:{n}" for n in ("README.txt", "nested/inner.zip", "../../escape.dcm")
        }
        assert "zip archive inside the archive" in report.failed[f"{archive}:nested/inner.zip"]
        assert all(name in reason for name, reason in report.failed.items())
        assert len(db.find(Query(Level.IMAGE))) == 10
        again = db.import_path([archive, tmp_path / "ct"])  # the same instances: present
        assert len(again.skipped) == 20 and not again.succeeded
    assert not (tmp_path / "escape.dcm").exists() and not (tmp_path.parent / "escape.dcm").exists()
    assert _incoming(tmp_path / "db") == []


def test_cli_import_of_an_archive(
    tmp_path: Path, slices: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DICOMSTATION_CONFIG", str(tmp_path / "cfg" / "settings.toml"))
    monkeypatch.setenv("DICOMSTATION_DB", str(tmp_path / "db"))
    monkeypatch.setattr(archives, "BATCH_FILES", 3)  # several batches
    archive = _zip(tmp_path / "study.zip", slices, zipfile.ZIP_STORED)
    result = CliRunner().invoke(app, ["db", "import", str(archive), "--json"])
    assert result.exit_code == ExitCode.DONE, result.output
    assert json.loads(result.stdout)["imported"] == 10
    junk = _zip(tmp_path / "junk.zip", {"notes.txt": b"nothing"})
    result = CliRunner().invoke(app, ["db", "import", str(junk)])
    assert result.exit_code == ExitCode.NOTHING_DONE, result.output
    assert f"{junk}:notes.txt" in result.stderr.replace("\n", "")
    assert _incoming(tmp_path / "db") == []


def test_a_bomb_a_damaged_member_and_a_broken_archive(
    tmp_path: Path, slices: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archives, "MAX_MEMBER_BYTES", 1 << 20)
    first, data = next(iter(slices.items()))
    members = {first: data, "bomb.dcm": bytes(64 << 20)}  # 64 MiB of zeros: ~64 kB deflated
    archive = _zip(tmp_path / "bomb.zip", members)
    assert archive.stat().st_size < 1 << 20
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as damaged:
        damaged.writestr("slice.dcm", data)
    raw = bytearray(buffer.getvalue())
    raw[raw.index(data[200:232]) + 8] ^= 0xFF  # one byte of the member: its CRC fails
    (tmp_path / "damaged.zip").write_bytes(bytes(raw))
    (tmp_path / "cut.zip").write_bytes(archive.read_bytes()[:5000])  # no central directory
    encrypted = bytearray(buffer.getvalue())  # the encryption flag, in both headers
    for signature, flags in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        encrypted[encrypted.index(signature) + flags] |= 0x01
    (tmp_path / "encrypted.zip").write_bytes(bytes(encrypted))
    names = ("damaged.zip", "cut.zip", "encrypted.zip")
    with Database.open(tmp_path / "db") as db:
        report = db.import_path([archive, *(tmp_path / n for n in names)])
    assert report.succeeded == (f"{archive}:{first}",)
    assert "inflates past 1048576 bytes" in report.failed[f"{archive}:bomb.dcm"]
    assert "is damaged" in report.failed[f"{tmp_path / 'damaged.zip'}:slice.dcm"]
    assert "not a readable zip archive" in report.failed[str(tmp_path / "cut.zip")]
    assert "encrypted" in report.failed[f"{tmp_path / 'encrypted.zip'}:slice.dcm"]
    assert _incoming(tmp_path / "db") == []


def test_a_dicom_file_whose_preamble_looks_like_a_zip_is_dicom(
    tmp_path: Path, slices: dict[str, bytes]
) -> None:
    data = bytearray(next(iter(slices.values())))
    data[:4] = b"PK\x03\x04"  # the preamble is free-form (DICOM/ZIP polyglots exist)
    path = tmp_path / "polyglot.dcm"
    path.write_bytes(bytes(data))
    with Database.open(tmp_path / "db") as db:
        assert db.import_path(path).succeeded == (str(path),)
