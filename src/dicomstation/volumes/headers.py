"""Read the per-frame headers the loader needs (no pixel data is read here).

A classic instance gives one :class:`FrameHeader`; an enhanced multi-frame
instance gives one per frame, merged from its shared and per-frame functional
groups; a cine multi-frame without functional groups gives one per frame with
the instance's geometry (often none).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicomstation.errors import LoadError
from dicomstation.volumes.fastheader import fast_frame
from dicomstation.volumes.model import FrameHeader, SliceSource
from dicomstation.volumes.mosaic import mosaic_tiles
from dicomstation.volumes.parallel import can_fork, fork_pool, worker_count

if TYPE_CHECKING:  # pydicom is imported only for files the fast header reader leaves
    from pydicom.dataset import Dataset

__all__ = ["read_headers"]

_NATIVE_LE = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")  # explicit, implicit VR little endian
_DEFLATED = "1.2.840.10008.1.2.1.99"
_PIXEL_TAGS = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10", b"\xe0\x7f\x08\x00", b"\xe0\x7f\x09\x00")


def read_headers(files: Iterable[str | os.PathLike[str]]) -> tuple[list[FrameHeader], list[str]]:
    """Read the headers of ``files``; return ``(frames, problems)``.

    Parameters
    ----------
    files : iterable of path-like
        DICOM files (any order); folders are searched recursively.

    Returns
    -------
    frames : list of FrameHeader
        One per frame of every readable image file.
    problems : list of str
        One message per file that is not DICOM or has no image (skipped).

    Raises
    ------
    LoadError
        When no file at all holds an image.
    """
    paths: list[Path] = []
    for f in map(Path, files):
        paths.extend(sorted(p for p in f.rglob("*") if p.is_file()) if f.is_dir() else [f])
    if not paths:
        raise LoadError("no files to load")
    # The fast reader first, in this thread (struct parsing holds the GIL: threads would
    # only add overhead); pydicom, in workers, for the files it leaves.
    results: list[list[FrameHeader] | str | None] = []
    for path in paths:
        fast = fast_frame(path)
        results.append([fast] if fast is not None else None)
    slow = [path for path, result in zip(paths, results, strict=True) if result is None]
    if slow:
        parsed = iter(_read_slow(slow))
        results = [next(parsed) if result is None else result for result in results]
    frames: list[FrameHeader] = []
    problems: list[str] = []
    for path, result in zip(paths, results, strict=True):
        assert result is not None
        if isinstance(result, str):
            problems.append(f"{path}: {result}")
        else:
            frames.extend(result)
    if not frames:
        listed = "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else "")
        raise LoadError(f"no image in {len(paths)} file(s): {listed}")
    return frames, problems


def _read_slow(paths: list[Path]) -> list[list[FrameHeader] | str]:
    """:func:`_read_one` of each path: forked workers for many files, else threads."""
    from concurrent.futures import ThreadPoolExecutor  # (with logging: ~0.01 s) only here

    import pydicom  # noqa: F401  (once, before forking or starting threads)

    if len(paths) >= 64 and can_fork():  # parsing is pure Python: processes, not threads
        with fork_pool() as pool:
            return pool.map(_read_one, paths, chunksize=len(paths) // (4 * worker_count()) + 1)
    with ThreadPoolExecutor(max_workers=worker_count()) as threads:
        return list(threads.map(_read_one, paths))


def _read_one(path: Path) -> list[FrameHeader] | str:
    """Headers of one file read with pydicom, or a message saying why it has none."""
    import pydicom
    from pydicom.errors import InvalidDicomError as PydicomInvalidDicomError

    try:
        with path.open("rb") as fh:
            ds = pydicom.dcmread(fh, stop_before_pixels=True)
            offset = fh.tell()
            tag = fh.read(4)
    except (OSError, PydicomInvalidDicomError, EOFError) as exc:
        return f"not readable as DICOM ({exc})"
    except Exception as exc:  # any other parser failure: named with its file, never raised
        return f"not readable as DICOM ({type(exc).__name__}: {exc})"
    syntax = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
    if "Rows" not in ds or "Columns" not in ds:
        return "not an image (no Rows/Columns)"
    has_pixels = tag in _PIXEL_TAGS
    if syntax == _DEFLATED:
        has_pixels = True  # the stream is inflated: the position test above does not apply
    native = syntax in _NATIVE_LE and tag == _PIXEL_TAGS[0]
    try:
        return _frames_of(path, ds, syntax, has_pixels, offset if native else None)
    except (AttributeError, IndexError, TypeError, ValueError) as exc:
        return f"malformed image header ({exc})"


def _frames_of(
    path: Path, ds: Dataset, syntax: str, has_pixels: bool, pixel_offset: int | None
) -> list[FrameHeader]:
    """Build the FrameHeaders of one dataset."""
    base = _base_fields(path, ds, syntax, has_pixels)
    base["pixel_offset"] = pixel_offset
    n = int(ds.get("NumberOfFrames", 1) or 1)
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        shared = _first(ds, "SharedFunctionalGroupsSequence")
        per_frame = ds.get("PerFrameFunctionalGroupsSequence", [])
        return [
            FrameHeader(
                **{
                    **base,
                    **_functional_fields(shared, _item(per_frame, i)),
                    **_src(ds, path, i, n),
                }
            )
            for i in range(n)
        ]
    classic = _classic_fields(ds)
    tiles = mosaic_tiles(ds) if n == 1 else None
    if tiles:
        return [FrameHeader(**{**base, **classic, **_src(ds, path, 0, 1), **t}) for t in tiles]
    return [FrameHeader(**{**base, **classic, **_src(ds, path, i, n)}) for i in range(n)]


def _src(ds: Dataset, path: Path, index: int, n: int) -> dict[str, Any]:
    frame_number = index + 1 if n > 1 or "NumberOfFrames" in ds else None
    return {"source": SliceSource(path, str(ds.get("SOPInstanceUID", "")), frame_number)}


def _base_fields(path: Path, ds: Dataset, syntax: str, has_pixels: bool) -> dict[str, Any]:
    """Fields common to every frame of an instance."""
    frame_time = ds.get("FrameTime")
    return {
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "samples_per_pixel": int(ds.get("SamplesPerPixel", 1) or 1),
        "photometric_interpretation": str(ds.get("PhotometricInterpretation", "MONOCHROME2")),
        "transfer_syntax_uid": syntax,
        "bits_allocated": int(ds.get("BitsAllocated", 16) or 16),
        "bits_stored": int(ds.get("BitsStored", ds.get("BitsAllocated", 16)) or 16),
        "pixel_representation": int(ds.get("PixelRepresentation", 0) or 0),
        "number_of_frames": int(ds.get("NumberOfFrames", 1) or 1),
        "series_instance_uid": str(ds.get("SeriesInstanceUID", "")),
        "study_instance_uid": str(ds.get("StudyInstanceUID", "")),
        "frame_of_reference_uid": _str_or_none(ds.get("FrameOfReferenceUID")),
        "modality": str(ds.get("Modality", "OT")),
        "sop_class_uid": str(ds.get("SOPClassUID", "")),
        "series_description": str(ds.get("SeriesDescription", "")),
        "instance_number": _int_or_none(ds.get("InstanceNumber")),
        "acquisition_number": _int_or_none(ds.get("AcquisitionNumber")),
        "acquisition_time": str(ds.get("AcquisitionTime", "")),
        "frame_time_ms": float(frame_time) if frame_time not in (None, "") else None,
        "has_pixel_data": has_pixels,
        "position": None,
        "orientation": None,
        "pixel_spacing": _floats(ds.get("PixelSpacing"), 2),
        "slice_thickness": None,
        "rescale_slope": 1.0,
        "rescale_intercept": 0.0,
    }


def _classic_fields(ds: Dataset) -> dict[str, Any]:
    """Geometry and distinguishing attributes of a classic (single-frame style) image."""
    echo = ds.get("EchoNumbers")
    return {
        "position": _floats(ds.get("ImagePositionPatient"), 3),
        "orientation": _floats(ds.get("ImageOrientationPatient"), 6),
        "pixel_spacing": _floats(ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing"), 2),
        "slice_thickness": _float_or_none(ds.get("SliceThickness")),
        "rescale_slope": _float_or_none(ds.get("RescaleSlope")) or 1.0,
        "rescale_intercept": _float_or_none(ds.get("RescaleIntercept")) or 0.0,
        "echo_number": _int_or_none(echo[0] if isinstance(echo, Sequence) and echo else echo),
        "echo_time": _float_or_none(ds.get("EchoTime")),
        "temporal_position": _int_or_none(ds.get("TemporalPositionIdentifier")),
        "trigger_time": _float_or_none(ds.get("TriggerTime")),
        "image_type": tuple(str(v) for v in (ds.get("ImageType") or ())),
        "has_modality_lut": "ModalityLUTSequence" in ds,
    }


def _functional_fields(shared: Dataset | None, frame: Dataset | None) -> dict[str, Any]:
    """Geometry and distinguishing attributes of one enhanced frame."""

    def get(seq: str, attr: str) -> Any:
        for group in (frame, shared):
            item = _first(group, seq) if group is not None else None
            if item is not None and attr in item:
                return item.get(attr)
        return None

    frame_type = get("MRImageFrameTypeSequence", "FrameType") or get(
        "CTImageFrameTypeSequence", "FrameType"
    )
    complex_part = get("MRImageFrameTypeSequence", "ComplexImageComponent")
    stack = get("FrameContentSequence", "InStackPositionNumber")
    return {
        "position": _floats(get("PlanePositionSequence", "ImagePositionPatient"), 3),
        "orientation": _floats(get("PlaneOrientationSequence", "ImageOrientationPatient"), 6),
        "pixel_spacing": _floats(get("PixelMeasuresSequence", "PixelSpacing"), 2),
        "slice_thickness": _float_or_none(get("PixelMeasuresSequence", "SliceThickness")),
        "rescale_slope": _float_or_none(get("PixelValueTransformationSequence", "RescaleSlope"))
        or 1.0,
        "rescale_intercept": _float_or_none(
            get("PixelValueTransformationSequence", "RescaleIntercept")
        )
        or 0.0,
        "echo_time": _float_or_none(get("MREchoSequence", "EffectiveEchoTime")),
        "temporal_position": _int_or_none(get("FrameContentSequence", "TemporalPositionIndex")),
        "trigger_time": _float_or_none(
            get("CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime")
        ),
        "image_type": tuple(str(v) for v in (frame_type or ()))
        + ((str(complex_part),) if complex_part else ()),
        "stack_position": _int_or_none(stack),
    }


def _first(ds: Dataset | None, keyword: str) -> Dataset | None:
    seq = ds.get(keyword) if ds is not None else None
    return seq[0] if seq else None


def _item(seq: Sequence[Dataset], index: int) -> Dataset | None:
    return seq[index] if index < len(seq) else None


def _floats(value: Any, n: int) -> Any:
    if value is None or isinstance(value, str | bytes):
        return None
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def _str_or_none(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
