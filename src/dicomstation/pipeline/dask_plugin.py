"""The Dask worker plugin that gives each worker process one :class:`NodePool`.

Imported only where ``distributed`` is (the Dask executor registers it when it
starts or connects); tasks find the pool with
:func:`~dicomstation.pipeline.nodepool.worker_pool`.
"""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from dicomstation.pipeline.nodepool import PLUGIN_NAME, NodePool

__all__ = ["NodePoolPlugin"]


class NodePoolPlugin(WorkerPlugin):
    """One :class:`NodePool` per worker process, closed when the worker stops.

    Parameters
    ----------
    size : int
        Most nodes the worker keeps open (see :class:`NodePool`).
    """

    name = PLUGIN_NAME
    idempotent = True  # registering again (another run on the same cluster) keeps the pool

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self.pool: NodePool | None = None

    def setup(self, worker: Any) -> None:
        """Called by Dask on each worker (at registration, or when a worker starts)."""
        self.pool = NodePool(self.size)

    def teardown(self, worker: Any) -> None:
        """Called by Dask when the worker stops: close the pooled clients."""
        if self.pool is not None:
            self.pool.close()
            self.pool = None
