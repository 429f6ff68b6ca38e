"""The scanner's fast paths index exactly what pydicom reads, on every real file (issue 15).

The fast walk (whole file, and from a fetcher's head bytes with the file's size)
decodes text itself for ASCII values and caches pydicom's decoding of the
others; every value must equal the plain pydicom path's (character sets, person
names with several groups, numbers), and the database rows built from them too.
"""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian

from dicomstation import Database
from dicomstation.database import scanner, scanvalues
from dicomstation.database.scanner import INDEX_FIELDS, scan_bytes, scan_head
from dicomstation.errors import InvalidDicomError
from tests.synth import write_ct_series

_HEAD = 16384  # the bytes a WADO-RS fetch keeps of each instance (nodes/wado.py)


def _normal(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields as the index stores them: an empty or absent value is the same row value."""
    return {k: v for k, v in fields.items() if v not in (None, "")}


def _plain(data: bytes, name: str) -> scanner.ScanResult | None:
    try:
        return scanner._slow(data, name)
    except InvalidDicomError:
        return None


def _files(shared_data: Path) -> list[Path]:
    return sorted(p for p in shared_data.rglob("*") if p.is_file() and not p.name.endswith(".gz"))


def test_fast_paths_equal_pydicom_on_every_shared_file(shared_data: Path) -> None:
    checked = charsets = 0
    for path in _files(shared_data):
        data = path.read_bytes()
        try:
            fast = scan_bytes(data, str(path))
        except InvalidDicomError:
            continue
        plain = _plain(data, str(path))
        assert plain is not None, path
        assert _normal(fast.fields) == _normal(plain.fields), path
        assert fast.transfer_syntax == plain.transfer_syntax, path
        head = scan_head(data[:_HEAD], len(data), str(path))
        if head is not None:
            assert head == fast, path
        checked += 1
        charsets += "SpecificCharacterSet" in fast.fields and "charset" in str(path)
    assert checked > 1000
    assert charsets >= 15  # pydicom's character-set files (ISO 2022, GB18030, UTF-8...)


def test_person_names_keep_every_group(shared_data: Path) -> None:
    """Names with ideographic and phonetic groups, as pydicom decodes them."""
    folder = shared_data / "pydicom_testfiles_subset" / "charset_files"
    if not folder.is_dir():
        pytest.skip("../shared/data lacks pydicom's character-set files")
    groups = 0
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if "PatientName" not in ds or "SOPInstanceUID" not in ds:
            continue
        fields = scan_bytes(path.read_bytes(), str(path)).fields
        assert fields["PatientName"] == str(ds.PatientName).rstrip("="), path.name
        groups += "=" in fields["PatientName"]
    assert groups >= 3


def test_decoded_values_cached_per_character_set() -> None:
    """The same bytes under two character sets decode to two values (the cache keys both)."""
    raw = "Müller^Jörg".encode("latin-1")
    latin = scanvalues.decode_value(raw, "pn", scanvalues.encodings_of(b"ISO_IR 100"))
    cyrillic = scanvalues.decode_value(raw, "pn", scanvalues.encodings_of(b"ISO_IR 144"))
    assert latin == "Müller^Jörg"
    assert cyrillic == raw.decode("iso_ir_144")
    assert cyrillic != latin
    assert scanvalues.decode_value(b"12 ", "is", scanvalues.encodings_of(b"")) == 12


def _rows(root: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(root / "index.sqlite")
    try:
        tables = {
            "patients": "SELECT patient_id, patient_name, birth_date, sex FROM patients",
            "studies": "SELECT * FROM studies",
            "series": "SELECT * FROM series",
            "instances": "SELECT * FROM instances",
        }
        return {t: sorted(map(tuple, conn.execute(q))) for t, q in tables.items()}
    finally:
        conn.close()


def test_database_rows_equal_through_the_plain_path(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """pydicom's test files and character sets indexed twice: fast scanner, then pydicom only."""
    sources = [
        shared_data / "pydicom_testfiles_subset" / "charset_files",
        shared_data / "dicompyler_rt",
    ]
    if not all(s.is_dir() for s in sources):
        pytest.skip("../shared/data lacks the files of this test")
    rows = []
    for name in ("fast", "plain"):
        if name == "plain":
            monkeypatch.setattr(scanner, "_fast", lambda *_a, **_k: _raise())
        with Database.open(tmp_path / name) as db:
            report = db.import_path(sources, copy=False, workers=1)
            assert len(report.succeeded) >= 15
        rows.append(_rows(tmp_path / name))
    fast, plain = rows
    assert {t: _without_paths(r) for t, r in fast.items()} == {
        t: _without_paths(r) for t, r in plain.items()
    }
    assert len(INDEX_FIELDS) == 25


def _raise() -> None:
    raise scanner._NeedsPydicomError


def _without_paths(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows without the import time (the two imports differ there; files are referenced)."""
    return [tuple(v for v in r if not isinstance(v, float)) for r in rows]


def _implicit_file(folder: Path) -> bytes:
    """A CT slice in Implicit VR Little Endian with a nested undefined-length sequence."""
    path = write_ct_series(folder, 1, size=16, patient_name="Implicit^Test")[0]
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    inner = Dataset()
    inner.CodeValue, inner.CodingSchemeDesignator, inner.CodeMeaning = "T-D0050", "SRT", "Tissue"
    item = Dataset()
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    item.PurposeOfReferenceCodeSequence = [inner]
    ds.ReferencedImageSequence = [item]
    for element in (ds["ReferencedImageSequence"], item["PurposeOfReferenceCodeSequence"]):
        element.is_undefined_length = True
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_implicit_vr_files_take_the_fast_walk(tmp_path: Path) -> None:
    """Implicit VR LE (what PACS often store) is walked too: pydicom took ~1.7 ms per
    512x512 slice, a third of a C-GET's time from Orthanc once instances came as stored."""
    data = _implicit_file(tmp_path)
    fast = scanner._fast(data)  # no _NeedsPydicomError
    plain = scanner._slow(data, "implicit.dcm")
    assert _normal(fast.fields) == _normal(plain.fields)
    assert fast.transfer_syntax == plain.transfer_syntax == ImplicitVRLittleEndian
    assert fast.fields["PatientName"] == "Implicit^Test"
    assert scan_head(data[:_HEAD], len(data), "implicit.dcm") == scan_bytes(data, "implicit.dcm")
    for cut in (len(data) - 7, len(data) // 2):
        with pytest.raises(InvalidDicomError, match="truncated"):
            scan_bytes(data[:cut], "implicit.dcm")
