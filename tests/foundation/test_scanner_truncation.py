"""Files the scanner hands to pydicom are told truncated from their bytes, not from warnings.

pydicom reports a sequence cut short only with a UserWarning, and an element header cut
at the end not at all. The scanner caught that warning with ``warnings.catch_warnings``,
which swaps the warnings module's process-wide state while receiving and importing
threads scan (see tests/pipeline/test_warnings_state.py). Here ``catch_warnings`` is
made to fail while the scanner reads big endian, deflated, file-meta-less and UN-sequence
files, whole and cut at many offsets.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
)

from dicomstation.database import extent as extent_module
from dicomstation.database import scanner
from dicomstation.database.extent import Extent, extent
from dicomstation.database.scanner import scan_bytes
from dicomstation.errors import InvalidDicomError
from tests.synth import write_ct_series


def _forbidden(*_args: Any, **_kwargs: Any) -> None:
    raise AssertionError("warnings.catch_warnings swaps process-wide state: not on this path")


@contextlib.contextmanager
def _no_catch_warnings() -> Iterator[None]:
    """Inside the block (not around it: pytest itself uses catch_warnings), it fails."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(warnings, "catch_warnings", _forbidden)
        yield


def _with_sequence(folder: Path, syntax: str, *, undefined_vr: str = "SQ") -> bytes:
    """A 16x16 CT slice in ``syntax`` with an undefined-length sequence before its pixels."""
    ds = pydicom.dcmread(write_ct_series(folder, 1, size=16)[0])
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.ReferencedImageSequence = [item]
    ds["ReferencedImageSequence"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    if syntax == ExplicitVRBigEndian:  # written by hand: save_as does not change endianness
        written = DicomBytesIO()
        written.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(written, ds.file_meta, enforce_standard=True)
        written.is_little_endian, written.is_implicit_VR = False, False
        body = Dataset()
        body.update({element.tag: element for element in ds})
        write_dataset(written, body)
        data = written.getvalue()
    else:
        saved = io.BytesIO()
        ds.save_as(saved, enforce_file_format=True)
        data = saved.getvalue()
    if undefined_vr == "UN":  # the sequence as a UN element (its items stay implicit VR LE)
        data = _as_un(data)
    return data


def _as_un(data: bytes) -> bytes:
    """Rewrite the little endian SQ header of (0008,1140) as UN: items then read as implicit."""
    header = b"\x08\x00\x40\x11SQ\x00\x00\xff\xff\xff\xff"
    assert data.count(header) == 1
    start = data.index(header) + 12
    end = data.index(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", start)
    inner = pydicom.dcmread(io.BytesIO(data)).ReferencedImageSequence[0]
    body = _implicit_item(inner)
    return data[: start - 12] + header.replace(b"SQ", b"UN") + body + data[end:]


def _implicit_item(item: Dataset) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, item)
    content = buffer.getvalue()
    return b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + content + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"


def _cases(tmp_path: Path) -> dict[str, bytes]:
    cases = {
        name: Path(str(get_testdata_file(name))).read_bytes()
        for name in ("MR_small_bigendian.dcm", "image_dfl.dcm", "ExplVR_BigEndNoMeta.dcm")
    }
    cases["big endian, undefined-length SQ"] = _with_sequence(tmp_path / "be", ExplicitVRBigEndian)
    cases["deflated, undefined-length SQ"] = _with_sequence(
        tmp_path / "dfl", DeflatedExplicitVRLittleEndian
    )
    cases["UN sequence"] = _with_sequence(
        tmp_path / "un", ExplicitVRLittleEndian, undefined_vr="UN"
    )
    return cases


def test_whole_files_scan_and_cut_ones_are_truncated(tmp_path: Path) -> None:
    for name, data in _cases(tmp_path).items():
        with _no_catch_warnings():
            _check_whole_and_cut(name, data)


def _check_whole_and_cut(name: str, data: bytes) -> None:
    assert scanner._extent(data) is Extent.COMPLETE, name
    assert scan_bytes(data, name).fields["SOPInstanceUID"], name
    meta = scanner.read_file_meta(data)
    start = meta[1] if meta else 0
    cuts = list(range(start + 1, len(data), max(1, len(data) // 150)))
    told = [cut for cut in cuts if scanner._extent(data[:cut]) is Extent.TRUNCATED]
    # a cut exactly between two top-level elements leaves a whole, shorter data set
    assert len(told) >= 0.9 * len(cuts), (name, len(told), len(cuts))
    for cut in told[:: max(1, len(told) // 10)]:
        with pytest.raises(InvalidDicomError, match=r"truncated|not a DICOM file"):
            scan_bytes(data[:cut], name)


def test_a_sequence_cut_inside_its_items_is_truncated(tmp_path: Path) -> None:
    for syntax in (ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian):
        data = _with_sequence(tmp_path / syntax, syntax)
        if syntax == ExplicitVRBigEndian:
            delimiter = data.index(b"\xff\xfe\xe0\xdd\x00\x00\x00\x00")
            cut = data[:delimiter]  # the file ends before the sequence delimiter
        else:
            cut = data[: len(data) - 9]  # inside the deflated stream
        with _no_catch_warnings(), pytest.raises(InvalidDicomError, match="truncated"):
            scan_bytes(cut, syntax)


def test_the_walk_gives_no_verdict_on_what_it_cannot_read() -> None:
    assert extent(b"\x08\x00\x18\x00\x00\x00\x00\x00", 0, ExplicitVRLittleEndian) is Extent.UNKNOWN
    item_out_of_place = b"\xfe\xff\x00\xe0\x00\x00\x00\x00"
    assert extent(item_out_of_place, 0, ExplicitVRLittleEndian) is Extent.UNKNOWN
    deep = b"".join(
        b"\x08\x00\x40\x11SQ\x00\x00\xff\xff\xff\xff\xfe\xff\x00\xe0\xff\xff\xff\xff"
        for _ in range(100)
    )
    assert extent(deep, 0, ExplicitVRLittleEndian) is Extent.UNKNOWN  # depth bounded


def test_a_deflate_bomb_is_refused_before_pydicom_inflates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = pydicom.dcmread(write_ct_series(tmp_path / "bomb", 1, size=16)[0])
    ds.PixelData = bytes(4_000_000)  # deflates to a few kilobytes
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    saved = io.BytesIO()
    ds.save_as(saved, enforce_file_format=True)
    data = saved.getvalue()
    assert len(data) < 40_000
    assert scan_bytes(data, "bomb.dcm").fields["SOPInstanceUID"] == ds.SOPInstanceUID
    monkeypatch.setattr(extent_module, "MAX_INFLATED", 1_000_000)
    called: list[object] = []
    monkeypatch.setattr(pydicom, "dcmread", lambda *a, **k: called.append(a))
    with pytest.raises(InvalidDicomError, match=r"bomb\.dcm.*inflates past"):
        scan_bytes(data, "bomb.dcm")
    assert called == []
