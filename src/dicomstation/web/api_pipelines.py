"""UI API for the Pipelines page: jobs and live per-item states from the ledger, the Dask dashboard.

Everything comes from the job ledger (``jobs.sqlite`` beside the database), so
jobs run by ``dicomstation run`` in another process, by the UI, or before a
restart all show, with the step each running item is on. A driver that runs on
Dask announces its cluster (:mod:`dicomstation.pipeline.cluster_info`); its
dashboard link is passed on. Answers are bounded (``limit`` items at most).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query

from dicomstation.errors import DicomStationError
from dicomstation.pipeline import LEDGER_NAME, ItemStatus, JobSummary, Ledger, StepState
from dicomstation.pipeline.cluster_info import CLUSTER_INFO, read_cluster
from dicomstation.web.workstation import Workstation

__all__ = ["MAX_ITEMS", "pipelines_router"]

#: Most items one answer lists.
MAX_ITEMS = 2000
_JOB_ID = re.compile(r"[0-9a-f]{1,64}")


def _job_json(summary: JobSummary) -> dict[str, Any]:
    return {
        "job": summary.job_id,
        "name": summary.name,
        "counts": dict(summary.counts),
        "total": summary.total,
        "created": summary.created,
        "updated": summary.updated,
        "cancel_requested": summary.cancel_requested,
    }


def _item_json(status: ItemStatus) -> dict[str, Any]:
    running = next((r.step for r in status.steps if r.state is StepState.RUNNING), "")
    return {
        "item": status.item.key,
        "state": status.state.value,
        "step": running,
        "attempts": status.attempts,
        "error": status.error,
        "steps": [
            {
                "step": r.step,
                "state": r.state.value,
                "seconds": round(r.seconds, 3),
                "outputs": len(r.outputs),
                "error": r.error,
            }
            for r in status.steps
        ],
    }


def cluster_json(folder: Path) -> dict[str, Any] | None:
    """The announced Dask cluster of a running driver (dashboard link), or None."""
    info = read_cluster(folder / CLUSTER_INFO)
    if info is None:
        return None
    dashboard = info.dashboard if info.dashboard.startswith(("http://", "https://")) else ""
    return {"target": info.target, "dashboard": dashboard, "started": info.started}


def pipelines_router(ws: Workstation) -> APIRouter:
    """Routes under ``/api``: ``GET /pipelines`` and ``GET /pipelines/{job}``."""
    router = APIRouter()
    folder = Path(ws.db.root)
    ledger_path = folder / LEDGER_NAME

    @router.get("/pipelines")
    def pipelines() -> dict[str, Any]:
        jobs: list[dict[str, Any]] = []
        if ledger_path.exists():
            with Ledger.open(ledger_path) as ledger:
                jobs = [_job_json(j) for j in ledger.jobs()]
        jobs.sort(key=lambda j: j["updated"], reverse=True)
        return {"jobs": jobs, "cluster": cluster_json(folder)}

    @router.get("/pipelines/{job_id}")
    def pipeline(
        job_id: str,
        state: str | None = None,
        limit: int = Query(500, ge=1, le=MAX_ITEMS),
    ) -> dict[str, Any]:
        if not _JOB_ID.fullmatch(job_id) or not ledger_path.exists():
            raise HTTPException(404, f"no pipeline job {job_id[:64]!r}")
        wanted = _state(state)
        with Ledger.open(ledger_path) as ledger:
            try:
                full = ledger.resolve(job_id)
                summary, items = ledger.job(full), ledger.items(full)
            except DicomStationError:
                raise HTTPException(404, f"no pipeline job {job_id!r}") from None
        chosen = [i for i in items if wanted is None or i.state is wanted]
        return {
            **_job_json(summary),
            "items": [_item_json(i) for i in chosen[:limit]],
            "more": max(0, len(chosen) - limit),
            "cluster": cluster_json(folder),
        }

    return router


def _state(value: str | None) -> StepState | None:
    if not value:
        return None
    try:
        return StepState.parse(value)
    except DicomStationError as exc:
        raise HTTPException(400, str(exc)) from None
