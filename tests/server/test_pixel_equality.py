"""Issue 12, Deliver: pixel data served in any form equals pydicom's decoding of the stored file.

Every DICOM file of ../shared/data is imported, except that the two large
one-slice-per-file folders (dcm_qa_nih, dcm_qa_philips_enh; 1300 files) are
sampled: every file whose name sorts at a multiple of ``_STRIDE`` plus every
enhanced (multi-frame) file, which keeps the run well under 90 s. ``.gz``/``.zip``
files are left out (``db import`` takes plain DICOM files).

For each instance served by dicomstation:

- frames (``application/octet-stream``, all frames in one request) and the pixel
  bulk data equal pydicom's decoding (native: the stored frame values, little
  endian, 1-bit frames packed from bit 0; compressed: pydicom's decoded array);
- the instance (default Accept: Explicit VR Little Endian) decodes to the same pixels;
- ``/rendered`` as PNG equals our windowing of pydicom's pixels exactly, and the
  JPEG thumbnail our rendering shrunk to 128 px within a small tolerance;
- when pydicom cannot decode the stored file, every decoded form is refused
  with a 4xx/5xx before any body is sent (never a 200 with wrong or no bytes).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut
from pydicom.pixels.utils import pixel_array

from dicomstation.database import Database
from dicomstation.models import InstanceRef, Level, Query
from dicomstation.nodes.multipart import boundary_of, iter_parts
from dicomstation.server import RunningServer, ServerOptions, create_app, start_in_thread
from dicomstation.server.render import THUMBNAIL, to_uint8

_SAMPLED = ("dcm_qa_nih", "dcm_qa_philips_enh")
_STRIDE = 50
_OCTET = 'multipart/related; type="application/octet-stream"'


def _files(shared_data: Path) -> list[Path]:
    chosen: list[Path] = []
    for folder in sorted(p for p in shared_data.iterdir() if p.is_dir()):
        files = sorted(
            p for p in folder.rglob("*") if p.is_file() and p.suffix not in (".gz", ".zip")
        )
        if folder.name in _SAMPLED:
            files = [p for i, p in enumerate(files) if i % _STRIDE == 0 or "/enh/" in str(p)]
        chosen += files
    return chosen


@pytest.fixture(scope="module")
def served(shared_data: Path) -> Iterator[tuple[Database, RunningServer]]:
    with Database.temporary() as db:
        db.import_path(_files(shared_data))  # non-DICOM files (txt, json, nrrd) are refused
        running = start_in_thread(create_app(db, ServerOptions(port=0)))
        try:
            yield db, running
        finally:
            running.stop()


def _parts(answer: httpx.Response) -> list[bytes]:
    boundary = boundary_of(answer.headers["content-type"])
    return [part.read() for part in iter_parts([answer.content], boundary)]


def _decodes(ds: Dataset) -> bool:
    try:
        pixel_array(ds, index=0)
    except Exception:  # pydicom cannot decode it: the server must refuse
        return False
    return True


def _expected_frame(ds: Dataset, index: int) -> npt.NDArray[Any]:
    """pydicom's frame: raw stored values when native, decoded (RGB...) when compressed."""
    native = not ds.file_meta.TransferSyntaxUID.is_compressed
    frame = pixel_array(ds, index=index, raw=native)
    return frame.astype(frame.dtype.newbyteorder("="))  # big-endian arrays as values


def _served_frame(ds: Dataset, data: bytes, like: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The served bytes as an array shaped like pydicom's frame, read as PS3.18 says."""
    if int(ds.get("BitsAllocated", 8)) == 1:
        bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
        return bits[: like.size].reshape(like.shape)
    values = np.frombuffer(data, like.dtype.newbyteorder("<"))
    planar = int(ds.get("PlanarConfiguration", 0) or 0) == 1 and like.ndim == 3
    if planar and not ds.file_meta.TransferSyntaxUID.is_compressed:
        return values.reshape(like.shape[2], *like.shape[:2]).transpose(1, 2, 0)
    return values.reshape(like.shape)


def _same_values(ds: Dataset, got: npt.NDArray[Any], want: npt.NDArray[Any]) -> bool:
    """Equal, comparing only the BitsStored low bits of integer native samples."""
    if want.dtype.kind in "iu" and not ds.file_meta.TransferSyntaxUID.is_compressed:
        stored = int(ds.get("BitsStored", want.dtype.itemsize * 8) or 8)
        mask = (1 << stored) - 1
        unsigned = f"u{want.dtype.itemsize}"
        return bool(np.array_equal(got.view(unsigned) & mask, want.view(unsigned) & mask))
    return bool(np.array_equal(got, want))


def _count(ds: Dataset) -> int:
    return int(getattr(ds, "NumberOfFrames", 1) or 1)


def _check_frames(http: httpx.Client, url: str, ds: Dataset) -> None:
    numbers = ",".join(str(n) for n in range(1, _count(ds) + 1))
    answer = http.get(f"{url}/frames/{numbers}", headers={"Accept": _OCTET})
    assert answer.status_code == 200, (url, answer.text[:200])
    frames = _parts(answer)
    assert len(frames) == _count(ds), url
    for index, data in enumerate(frames):
        want = _expected_frame(ds, index)
        assert _same_values(ds, _served_frame(ds, data, want), want), (url, index + 1)
    bulk = http.get(f"{url}/bulkdata/7FE00010", headers={"Accept": _OCTET})
    assert bulk.status_code == 200, url
    if int(ds.get("BitsAllocated", 8)) != 1:
        assert _parts(bulk)[0] == b"".join(frames), url


def _check_instance(http: httpx.Client, url: str, ds: Dataset) -> None:
    answer = http.get(url, headers={"Accept": 'multipart/related; type="application/dicom"'})
    assert answer.status_code == 200, url
    served = pydicom.dcmread(io.BytesIO(_parts(answer)[0]))
    assert served.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1", url
    assert np.array_equal(served.pixel_array, pixel_array(ds)), url


def _our_rendering(ds: Dataset) -> npt.NDArray[np.uint8]:
    """Our windowing of pydicom's first frame (the rule render.py documents)."""
    arr = pixel_array(ds, index=0 if _count(ds) > 1 else None)
    if int(getattr(ds, "SamplesPerPixel", 1)) != 1:
        return arr if arr.dtype == np.uint8 else to_uint8(arr.astype(np.float64), None)
    values = apply_modality_lut(arr, ds).astype(np.float64)
    if "WindowCenter" in ds:
        values = np.asarray(apply_voi_lut(values, ds), dtype=np.float64)
    out = to_uint8(values, None)
    return 255 - out if ds.PhotometricInterpretation == "MONOCHROME1" else out


def _check_rendered(http: httpx.Client, url: str, ds: Dataset) -> None:
    """Rendered PNG (lossless): exactly our rendering; JPEG thumbnail: within a tolerance."""
    want = _our_rendering(ds)
    answer = http.get(f"{url}/rendered", headers={"Accept": "image/png"})
    assert answer.status_code == 200, url
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(answer.content))), want), url
    expected = Image.fromarray(want)
    expected.thumbnail((THUMBNAIL, THUMBNAIL))
    jpeg = http.get(f"{url}/thumbnail", headers={"Accept": "image/jpeg"})
    assert jpeg.status_code == 200, url
    got = np.asarray(Image.open(io.BytesIO(jpeg.content)), dtype=np.float64)
    assert got.shape == np.asarray(expected).shape, url
    if min(want.shape[:2]) >= 32:  # JPEG of a few pixels is far off by nature
        assert np.mean(np.abs(got - np.asarray(expected, dtype=np.float64))) < 6, url


def _check_refused(http: httpx.Client, url: str) -> None:
    for target, accept in (
        ("/frames/1", _OCTET),
        ("/bulkdata/7FE00010", _OCTET),
        ("", 'multipart/related; type="application/dicom"'),
        ("/rendered", "image/png"),
        ("/thumbnail", "image/jpeg"),
    ):
        answer = http.get(url + target, headers={"Accept": accept})
        assert 400 <= answer.status_code < 600, (url, target)
        assert answer.json()["detail"], (url, target)


def _instances(db: Database) -> list[InstanceRef]:
    return [r for r in db.find(Query(Level.IMAGE)) if isinstance(r, InstanceRef)]


def test_every_served_pixel_equals_pydicom(served: tuple[Database, RunningServer]) -> None:
    db, running = served
    checked = refused = 0
    with httpx.Client(base_url=f"{running.url}/dicom-web", timeout=60) as http:
        for ref in _instances(db):
            ds = pydicom.dcmread(db.instance_path(ref.sop_instance_uid), force=True)
            if "PixelData" not in ds:
                continue
            url = (
                f"/studies/{ref.study_uid}/series/{ref.series_uid}/instances/{ref.sop_instance_uid}"
            )
            if not _decodes(ds):
                _check_refused(http, url)
                refused += 1
                continue
            _check_frames(http, url, ds)
            _check_instance(http, url, ds)
            _check_rendered(http, url, ds)
            checked += 1
    assert checked > 100, checked
    assert refused >= 1  # JPEG-lossy.dcm: its 12-bit JPEG is beyond pydicom's plugins
