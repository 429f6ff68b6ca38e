"""Where a running Dask cluster can be seen: a small JSON file beside the job ledger.

A driver that runs on Dask (``dicomstation run --cluster/--scheduler``) writes
``dask-cluster.json`` (0600) in the database folder while its cluster is up, and
removes it when done, so another process (the web UI's Pipelines page) can link
to the Dask dashboard. Only addresses are written: no credentials, no paths.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["CLUSTER_INFO", "ClusterInfo", "forget_cluster", "read_cluster", "write_cluster"]

#: File name of the announcement, beside the ledger (``jobs.sqlite``).
CLUSTER_INFO = "dask-cluster.json"


@dataclass(frozen=True)
class ClusterInfo:
    """A running driver's Dask cluster: its target, scheduler, dashboard URL and driver pid."""

    target: str
    scheduler: str
    dashboard: str
    pid: int
    started: float


def write_cluster(path: Path, target: str, scheduler: str, dashboard: str) -> ClusterInfo:
    """Announce the cluster at ``path`` (written whole, mode 0600); return what was written."""
    info = ClusterInfo(target, scheduler, dashboard, os.getpid(), time.time())
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(asdict(info), out)
    os.replace(part, path)
    return info


def forget_cluster(path: Path) -> None:
    """Remove the announcement if this process wrote it."""
    info = read_cluster(path)
    if info is not None and info.pid == os.getpid():
        with contextlib.suppress(OSError):
            path.unlink()


def read_cluster(path: Path) -> ClusterInfo | None:
    """The announced cluster, or None (no file, unreadable, or its driver is gone)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        info = ClusterInfo(
            str(raw["target"]),
            str(raw["scheduler"]),
            str(raw["dashboard"]),
            int(raw["pid"]),
            float(raw["started"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if _alive(info.pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
