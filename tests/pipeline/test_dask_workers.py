"""The worker processes of a LocalCluster we start (real ``distributed.LocalCluster``, 2 workers).

- the tasks one worker runs share one DICOMweb node per server (the node pool of the
  worker plugin), not one client per task;
- the workers run without Dask's statistical profiler, whose per-second profiles made
  worker memory grow with the cohort (about 0.5 MiB per study in bench_pipeline).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from dicomstation.config import DicomWebServer
from dicomstation.pipeline import Ledger, Pipeline, RunOptions
from dicomstation.pipeline.dask_executor import DaskExecutor
from dicomstation.pipeline.step import StepContext, register_step

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.timeout(120)

ITEMS = 10
# Nodes seen by the tasks of this worker process, kept alive so that an id is never reused.
_SEEN: list[object] = []


@dataclass(frozen=True)
class _NodeIdentity:
    """Outputs (worker pid, id of the node of server 'pacs'); never talks to the server."""

    kind: ClassVar[str] = "test-node-identity"
    memory_only: ClassVar[bool] = False
    name: str

    def run(self, ctx: StepContext) -> tuple[str, ...]:
        node = ctx.node("pacs")
        _SEEN.append(node)
        return (str(os.getpid()), str(id(node)))

    def restore(self, ctx: StepContext, outputs: tuple[str, ...]) -> None:
        """Nothing to restore."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name}


register_step(_NodeIdentity.kind, lambda name, table: _NodeIdentity(name))


class _RegisterStep(distributed.WorkerPlugin):  # type: ignore[misc]
    """Unpickling this on a worker imports this module: the step kind exists there."""


@pytest.fixture(scope="module")
def executor() -> Iterator[DaskExecutor]:
    # A plain LocalCluster started earlier in this process (another test module) leaves
    # Dask's MALLOC_TRIM_THRESHOLD_ in os.environ; a user's driver process starts clean.
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
        with DaskExecutor("local:2", dashboard=False) as running:
            running.start().register_plugin(_RegisterStep())
            yield running


def test_tasks_of_a_worker_share_one_node_per_server(
    executor: DaskExecutor, tmp_path: Path
) -> None:
    items = [f"1.2.826.0.1.3680043.8.498.44{n}" for n in range(ITEMS)]
    pipeline = Pipeline.from_dict(
        {
            "name": "node-identity",
            "source": {"kind": "items", "items": items},
            "steps": [{"kind": _NodeIdentity.kind, "name": "probe"}],
            "run": {"workspace": "temporary"},
        }
    )
    # Port 9 (discard) on loopback: building the client opens no connection.
    servers = {"pacs": DicomWebServer(name="pacs", url="http://127.0.0.1:9/dicom-web")}
    report = pipeline.run(RunOptions(tmp_path / "db", servers, executor=executor))
    assert (report.done, dict(report.failed)) == (ITEMS, {})
    with Ledger.open(tmp_path / "db" / "jobs.sqlite") as ledger:
        seen = [i.steps[0].outputs for i in ledger.items(pipeline.job_id)]
    tasks_per_pid = Counter(pid for pid, _ in seen)
    nodes_per_pid = Counter(pid for pid, _ in set(seen))
    assert os.getpid() not in {int(pid) for pid in tasks_per_pid}  # ran on the workers
    # A node per task would give every task its own id (the nodes are kept alive).
    assert all(n == 1 for n in nodes_per_pid.values()), (tasks_per_pid, nodes_per_pid)
    assert max(tasks_per_pid.values()) > 1


def _profiling(dask_worker: Any) -> tuple[bool, bool, int]:
    import dask

    return (
        bool(dask.config.get("distributed.worker.profile.enabled")),
        "profile" in dask_worker.periodic_callbacks,
        len(dask_worker.profile_history),
    )


def test_our_workers_keep_no_statistical_profile(executor: DaskExecutor) -> None:
    state = executor.start().run(_profiling)
    assert len(state) == 2
    assert set(state.values()) == {(False, False, 0)}, state


def _trim_threshold() -> str | None:
    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def test_our_workers_keep_glibcs_dynamic_mmap_threshold(executor: DaskExecutor) -> None:
    """Dask's MALLOC_TRIM_THRESHOLD_ made every large numpy array a fresh mmap in a worker."""
    import dask

    assert set(executor.start().run(_trim_threshold).values()) == {None}
    assert _trim_threshold() is None  # nor put into this process's environment
    # Only our cluster's nannies were created without it: Dask's setting here is unchanged.
    assert "MALLOC_TRIM_THRESHOLD_" in dask.config.get("distributed.nanny.pre-spawn-environ")
