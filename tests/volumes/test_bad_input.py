"""Bad input never becomes a silently wrong volume: LoadError or a warning naming the files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from dicomstation.errors import GeometryWarning, LoadError
from dicomstation.volumes import examine, load_series, pixels
from tests.volumes.synth import expected_array, make_series


def test_truncated_slice_raises_naming_the_file(tmp_path: Path) -> None:
    files = make_series(tmp_path, n=5)
    victim = files[2]
    victim.write_bytes(victim.read_bytes()[:-50])
    with pytest.raises(LoadError) as info:
        load_series(files)
    assert victim.name in str(info.value) and "truncated" in str(info.value)


def test_corrupt_compressed_slice_raises_naming_the_file(tmp_path: Path) -> None:
    files = make_series(tmp_path, n=3)
    ds = pydicom.dcmread(files[1])
    ds.compress(RLELossless)
    ds.PixelData = encapsulate([b"\x01\x02garbage" * 3])
    ds.save_as(files[1])
    with pytest.raises(LoadError, match=files[1].name):
        load_series(files)


def test_not_dicom_file_is_named_in_a_warning(tmp_path: Path) -> None:
    files = make_series(tmp_path, n=4)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"this is not DICOM" * 20)
    with pytest.warns(GeometryWarning, match="junk.dcm"):
        loaded = load_series([*files, junk])
    assert any("junk.dcm" in w for w in loaded.warnings)
    np.testing.assert_array_equal(loaded.volume.array, expected_array(4) - 1024)


def test_missing_pixel_data_warns_and_shows_the_gap(tmp_path: Path) -> None:
    files = make_series(tmp_path, n=5)
    by_k = sorted(files, key=lambda p: p.name)
    ds = pydicom.dcmread(by_k[2])
    del ds.PixelData
    ds.save_as(by_k[2])
    with pytest.warns(GeometryWarning) as caught:
        loaded = load_series(files)
    messages = " ".join(str(w.message) for w in caught)
    assert "no pixel data" in messages and by_k[2].name in messages
    assert "missing slices" in messages
    assert loaded.volume.array.shape[0] == 4


def test_unsupported_transfer_syntax_raises(tmp_path: Path) -> None:
    files = make_series(tmp_path, n=3)
    ds = pydicom.dcmread(files[0])
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: pydicom has no decoder
    ds.PixelData = encapsulate([b"\xff\x0a" + b"\0" * 30])
    ds["PixelData"].VR = "OB"
    ds.save_as(files[0])
    with pytest.raises(LoadError, match=files[0].name):
        load_series(files)


def test_nothing_loadable_raises(tmp_path: Path) -> None:
    junk = tmp_path / "a.txt"
    junk.write_text("hello")
    with pytest.raises(LoadError, match=r"a\.txt"):
        examine([junk])
    with pytest.raises(LoadError, match="no files"):
        load_series([])


def test_no_file_with_pixels_raises_saying_why(tmp_path: Path) -> None:
    """Image headers without PixelData (and a non-DICOM file): the error says why for each."""
    files = make_series(tmp_path, n=2)
    for path in files:
        ds = pydicom.dcmread(path)
        del ds.PixelData
        ds.save_as(path)
    junk = tmp_path / "notes.dcm"
    junk.write_bytes(b"this is not DICOM" * 20)
    with pytest.raises(LoadError) as info:
        load_series([*files, junk])
    message = str(info.value)
    assert "\n" not in message
    assert "2 file(s) have no pixel data" in message
    assert all(path.name in message for path in files)
    assert "notes.dcm" in message and "not readable as DICOM" in message


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_compressed_series_decode_identically(tmp_path: Path, syntax: str) -> None:
    files = make_series(tmp_path, n=4, rows=64, cols=64)
    plain = load_series(files).volume.array.copy()
    for path in files:
        ds = pydicom.dcmread(path)
        ds.compress(syntax)
        ds.save_as(path)
    assert {str(pydicom.dcmread(p).file_meta.TransferSyntaxUID) for p in files} == {syntax}
    np.testing.assert_array_equal(load_series(files).volume.array, plain)


def test_many_compressed_files_use_worker_processes_and_name_bad_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forks: list[bool] = []
    if sys.platform == "linux":  # force the forked-decoder path, whatever the machine's load
        monkeypatch.setattr(pixels, "_can_fork", lambda: forks.append(True) or True)
    files = make_series(tmp_path, n=20, rows=32, cols=32)
    plain = load_series(files).volume.array.copy()
    for path in files:
        ds = pydicom.dcmread(path)
        ds.compress(JPEGLSLossless)
        ds.save_as(path)
    np.testing.assert_array_equal(load_series(files).volume.array, plain)
    assert forks == ([True] if sys.platform == "linux" else [])
    ds = pydicom.dcmread(files[7])
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7 broken"])
    ds.save_as(files[7])
    with pytest.raises(LoadError, match=files[7].name):
        load_series(files)
