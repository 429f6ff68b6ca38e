"""The fast header reader gives exactly the FrameHeader pydicom's path gives, or declines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian

from dicomstation.volumes import headers, load_series
from dicomstation.volumes.fastheader import fast_frame
from tests.volumes.synth import make_series, oblique_orientation


def _pydicom_frames(path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    with monkeypatch.context() as patch:
        patch.setattr(headers, "fast_frame", lambda _path: None)
        return headers._read_one(path)


def test_synthetic_series_agrees_with_pydicom(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = make_series(
        tmp_path, n=3, orientation=oblique_orientation(), extra={"SeriesDescription": "T1 ax"}
    )
    for path in paths:
        fast = fast_frame(path)
        assert fast is not None
        assert [fast] == _pydicom_frames(path, monkeypatch)


def test_implicit_vr_series_is_read_fast_and_loads_equal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Implicit VR LE slices (as many archives store them) no longer go to pydicom.

    A nested undefined-length sequence is skipped; the header equals pydicom's, and the
    loaded volume equals the explicit VR original's.
    """
    explicit = make_series(tmp_path / "explicit", n=3, orientation=oblique_orientation())
    (tmp_path / "implicit").mkdir()
    paths = []
    for source in explicit:
        ds = pydicom.dcmread(source)
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        item = Dataset()
        item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
        ds.ReferencedImageSequence = [item]
        ds["ReferencedImageSequence"].is_undefined_length = True
        paths.append(tmp_path / "implicit" / source.name)
        ds.save_as(paths[-1], enforce_file_format=True)
    for path in paths:
        fast = fast_frame(path)
        assert fast is not None and fast.transfer_syntax_uid == ImplicitVRLittleEndian
        assert [fast] == _pydicom_frames(path, monkeypatch)
    loaded, original = load_series(paths).volume, load_series(explicit).volume
    assert np.array_equal(loaded.array, original.array)
    assert np.array_equal(loaded.affine, original.affine)


@pytest.mark.shared
def test_real_files_agree_with_pydicom(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checked = 0
    for path in sorted(shared_data.rglob("*.dcm")):
        fast = fast_frame(path)
        if fast is None:
            continue
        assert [fast] == _pydicom_frames(path, monkeypatch), path
        checked += 1
    assert checked >= 300  # the classic CT/MR slices of the shared data
