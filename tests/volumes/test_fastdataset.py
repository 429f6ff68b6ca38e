"""read_header makes what pydicom.dcmread(path, stop_before_pixels=True) makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian

from dicomstation.volumes.fastdataset import AVAILABLE, _GiveUpError, _read, read_header
from tests.volumes.synth import make_series

DATA = Path("../shared/data")
#: Our fast path exists only on the pydicom version it mirrors.
fast_only = pytest.mark.skipif(not AVAILABLE, reason="mirrors pydicom 3.0")


def _state(ds: Dataset) -> dict[str, Any]:
    """Every attribute of the dataset object but its elements and file meta."""
    return {k: v for k, v in vars(ds).items() if k not in ("_dict", "file_meta")}


def _assert_same(ours: Dataset, theirs: Dataset, where: object) -> None:
    assert type(ours) is type(theirs), where
    assert _state(ours) == _state(theirs), where
    assert list(ours._dict) == list(theirs._dict), where
    for tag, element in theirs._dict.items():
        assert ours._dict[tag] == element, (where, tag)
    if hasattr(theirs, "file_meta"):
        _assert_same(ours.file_meta, theirs.file_meta, (where, "file meta"))


def _fast(path: Path) -> Dataset | None:
    try:
        return _read(str(path))
    except _GiveUpError:
        return None


@fast_only
def test_synthetic_series(tmp_path: Path) -> None:
    for path in sorted(make_series(tmp_path))[:3]:
        ours = _fast(path)
        assert ours is not None
        theirs = pydicom.dcmread(path, stop_before_pixels=True)
        _assert_same(ours, theirs, path)
        assert ours == theirs  # every value decoded
        _assert_same(ours, theirs, path)  # and the same elements decoded


@fast_only
def test_implicit_vr_files(tmp_path: Path) -> None:
    """Implicit VR LE headers (VR from pydicom's dictionary on access) are read fast too."""
    for path in sorted(make_series(tmp_path))[:3]:
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.AccessionNumber = None  # an empty value (raw None in implicit VR)
        ds.save_as(path, enforce_file_format=True)
        ours = _fast(path)
        assert ours is not None
        theirs = pydicom.dcmread(path, stop_before_pixels=True)
        _assert_same(ours, theirs, path)
        assert ours == theirs
        _assert_same(ours, theirs, path)


def test_not_dicom_is_refused_as_pydicom_refuses(tmp_path: Path) -> None:
    path = tmp_path / "not.dcm"
    path.write_bytes(b"\x00" * 200)
    with pytest.raises(pydicom.errors.InvalidDicomError):
        read_header(path)


@fast_only
@pytest.mark.shared
def test_shared_data_files() -> None:
    if not DATA.is_dir():
        pytest.skip("../shared/data is absent")
    paths = sorted(p for p in DATA.rglob("*") if p.is_file() and p.stat().st_size <= 300_000)
    fast = 0
    for path in paths[:: max(1, len(paths) // 60)]:
        try:
            theirs = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # not DICOM: read_header raises too
            with pytest.raises(Exception):  # noqa: B017
                read_header(path)
            continue
        ours = _fast(path)
        if ours is None:
            continue
        fast += 1
        _assert_same(ours, theirs, path)
        assert ours == theirs, path
        _assert_same(ours, theirs, path)
    assert fast > 25, fast
