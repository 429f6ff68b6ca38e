"""The fast header reader gives exactly the FrameHeader pydicom's path gives, or declines."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomstation.volumes import headers
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
