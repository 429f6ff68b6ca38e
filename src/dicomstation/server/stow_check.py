"""Per-part checks of a STOW-RS request, then indexing into the database."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pydicom
from fastapi import Request
from pydicom.errors import InvalidDicomError

from dicomstation.server.context import ServerContext
from dicomstation.server.uids import is_uid

__all__ = ["FAILURE_CANNOT_UNDERSTAND", "FAILURE_PROCESSING", "PartResult", "check_parts"]

FAILURE_PROCESSING = 0x0110
FAILURE_MISMATCH = 0xA900  # data set does not match (here: not in the study of the URL)
FAILURE_CANNOT_UNDERSTAND = 0xC000


@dataclass(frozen=True)
class PartResult:
    """What happened to one part: failure 0 means stored (or already present)."""

    index: int
    sop_class: str = ""
    sop_instance: str = ""
    study: str = ""
    series: str = ""
    failure: int = 0
    reason: str = ""
    url: str = ""


def _read(index: int, path: Path, study: str | None) -> PartResult:
    try:
        ds = pydicom.dcmread(
            path,
            stop_before_pixels=True,
            specific_tags=[
                "SOPClassUID",
                "SOPInstanceUID",
                "StudyInstanceUID",
                "SeriesInstanceUID",
            ],
        )
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        return PartResult(
            index, failure=FAILURE_CANNOT_UNDERSTAND, reason=f"not a DICOM file ({exc})"
        )
    uids = [
        str(getattr(ds, k, ""))
        for k in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
    ]
    result = PartResult(index, uids[0], uids[1], uids[2], uids[3])
    bad = [
        k
        for k, v in zip(
            ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"),
            uids,
            strict=True,
        )
        if not is_uid(v)
    ]
    if bad:
        return _fail(result, FAILURE_CANNOT_UNDERSTAND, f"missing or invalid {', '.join(bad)}")
    if study is not None and result.study != study:
        return _fail(
            result,
            FAILURE_MISMATCH,
            f"instance {result.sop_instance} belongs to study {result.study}, not {study}",
        )
    return result


def _fail(result: PartResult, code: int, reason: str) -> PartResult:
    return replace(result, failure=code, reason=reason)


def check_parts(
    ctx: ServerContext, request: Request, files: list[Path], study: str | None
) -> list[PartResult]:
    """Check each part, index the good ones (moving them into the store), report every part."""
    results = [_read(i, path, study) for i, path in enumerate(files)]
    good = {str(files[r.index]): r for r in results if r.failure == 0}
    report = ctx.db.add_files(list(good), move=True) if good else None
    out: list[PartResult] = []
    for result in results:
        source = str(files[result.index])
        if report is not None and source in report.failed:
            out.append(_fail(result, FAILURE_PROCESSING, report.failed[source]))
        elif result.failure == 0:
            url = ctx.instance_url(request, result.study, result.series, result.sop_instance)
            out.append(replace(result, url=url))
        else:
            out.append(result)
    return out
