"""Checks that URL UIDs exist and belong together (instance in series in study)."""

from __future__ import annotations

from pathlib import Path

from fastapi import HTTPException

from dicomstation.models import InstanceRef, Level, Query
from dicomstation.server.context import ServerContext
from dicomstation.server.uids import check_uid

__all__ = ["instance_refs", "one_instance", "study_or_404", "transfer_syntax"]


def study_or_404(ctx: ServerContext, study: str) -> None:
    """Raise 404 unless the study is in the database."""
    check_uid(study, "StudyInstanceUID")
    found = ctx.db.find(Query(Level.STUDY, {"StudyInstanceUID": study}, limit=1))
    if not found:
        raise HTTPException(404, f"study {study} is not in the database")


def instance_refs(
    ctx: ServerContext, study: str, series: str | None = None, sop: str | None = None
) -> list[InstanceRef]:
    """Instances of a study / series / one instance; 404 naming the UID when there are none."""
    check_uid(study, "StudyInstanceUID")
    if series is not None:
        check_uid(series, "SeriesInstanceUID")
    filters = {"SOPInstanceUID": check_uid(sop, "SOPInstanceUID")} if sop else {}
    refs = ctx.db.find(Query(Level.IMAGE, filters, study_uid=study, series_uid=series))
    if not refs:
        what = f"instance {sop}" if sop else f"series {series}" if series else f"study {study}"
        where = f" in series {series}" if sop else f" in study {study}" if series else ""
        raise HTTPException(404, f"{what}{where} is not in the database")
    return [r for r in refs if isinstance(r, InstanceRef)]


def one_instance(ctx: ServerContext, study: str, series: str, sop: str) -> tuple[InstanceRef, Path]:
    """The instance's ref and file, checked against its series and study."""
    ref = instance_refs(ctx, study, series, sop)[0]
    return ref, ctx.db.instance_path(sop)


def transfer_syntax(ref: InstanceRef) -> str:
    """Stored transfer syntax of an instance ('' when unknown)."""
    value = ref.json.get("00083002", {}).get("Value", [""])
    return str(value[0]) if value else ""
