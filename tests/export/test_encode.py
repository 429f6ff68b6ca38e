"""encode_file writes exactly the bytes pydicom's save_as writes (exports and real files)."""

from __future__ import annotations

import io
from copy import deepcopy
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from dicomstation import processing as proc
from dicomstation.export import SourceSeries
from dicomstation.export.common import ExportOptions
from dicomstation.export.encode import AVAILABLE, _encode, _UnsupportedError, encode_file
from dicomstation.pipeline.exports import ExportInput, Kind, export_kind
from dicomstation.pipeline.segmenters import make_segmenter

DATA = Path("../shared/data")
#: Our fast path exists only on the pydicom version it mirrors.
fast_only = pytest.mark.skipif(not AVAILABLE, reason="mirrors pydicom 3.0")


def _pydicom(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _fast(ds: Dataset) -> bytes | None:
    """Our bytes, or None when the encoder hands the file to pydicom."""
    try:
        return _encode(ds)
    except _UnsupportedError:
        return None


def _built(ct: SourceSeries) -> dict[str, Dataset]:
    found = make_segmenter("threshold", {"threshold": [250, 350]}).segment(ct.volume)
    request = ExportInput(ct, ExportOptions(institution_name="Test"), found, {"smooth_mm": 1.0})
    statistics = proc.segment_statistics(ct.volume, found.masks(), found.names())
    request = replace(request, statistics=statistics)
    built: dict[str, Dataset] = {}
    for kind in (Kind.SEG, Kind.SR, Kind.SC, Kind.DERIVED, Kind.PM, Kind.BUNDLE):
        step = replace(request, built={k: (v,) for k, v in built.items()})
        built[kind] = export_kind(kind).build(step)[-1]
    return built


@fast_only
def test_every_export_kind(ct: SourceSeries) -> None:
    for kind, ds in _built(ct).items():
        ours = _fast(ds)
        assert ours is not None, f"{kind} went to pydicom"
        assert ours == _pydicom(ds), kind
        assert encode_file(ds) == ours


def test_what_it_does_not_handle_goes_to_pydicom(ct: SourceSeries) -> None:
    ds = deepcopy(ct.datasets[0])
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    assert _fast(ds) is None
    assert encode_file(ds) == _pydicom(ds)
    bad = deepcopy(ct.datasets[0])
    bad.add_new(0x00020010, "UI", "1.2.840.10008.1.2.1")  # file meta in the data set
    with pytest.raises(ValueError, match="File Meta Information Group"):
        encode_file(bad)


@fast_only
@pytest.mark.shared
def test_real_files_as_read_and_decoded() -> None:
    """Files of ../shared/data (up to 256 kB, 30 of them): as read (raw elements written as
    read), and with every element decoded on a copy stripped of its original encoding."""
    if not DATA.is_dir():
        pytest.skip("../shared/data is absent")
    paths = sorted(p for p in DATA.rglob("*") if p.is_file() and p.stat().st_size <= 256_000)
    fast = compared = 0
    for path in paths[:: max(1, len(paths) // 30)]:
        try:
            ds = pydicom.dcmread(path)
        except Exception:
            continue
        decoded = Dataset(deepcopy(ds))
        decoded.file_meta = deepcopy(ds.file_meta)
        for _ in decoded.iterall():
            pass
        for each in (ds, decoded):
            ours = _fast(each)
            try:
                theirs = _pydicom(each)
            except Exception:
                with pytest.raises(Exception):  # noqa: B017
                    encode_file(each)
                continue
            compared += 1
            if ours is not None:
                fast += 1
                assert ours == theirs, path
    assert compared > 40 and fast > 30, (compared, fast)
