"""Nodes kept open across the tasks of one executor (one HTTP client per server and process).

Opening a DICOMweb node builds an ``httpx.Client`` whose TLS context loads the
CA bundle (tens of milliseconds) and whose connections are then set up again;
a task per study paid that for every server it talked to. A :class:`NodePool`
keeps those nodes for the lifetime of an executor run (in-process) or of a
Dask worker process (the plugin in :mod:`~dicomstation.pipeline.dask_plugin`),
keyed by the server's whole configuration (credentials included), so a task
still gets exactly the node its manifest describes. Only DICOMweb nodes are
pooled: their client is thread-safe and holds no per-task state. DIMSE nodes
(associations, a C-MOVE listener) stay per task. The pool is bounded; the
least recently used node is closed when a new one would exceed it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeGuard

from dicomstation.config import DicomWebServer, ServerConfig
from dicomstation.nodes.base import DicomNode

__all__ = ["PLUGIN_NAME", "NodePool", "worker_pool"]

#: Name of the Dask worker plugin that holds a worker's pool.
PLUGIN_NAME = "dicomstation-node-pool"


class NodePool:
    """Open nodes by server configuration, shared by the tasks of one process.

    Parameters
    ----------
    size : int
        Most nodes kept open at once (least recently used closed first).
    """

    def __init__(self, size: int = 8) -> None:
        self.size = max(1, size)
        self._nodes: OrderedDict[DicomWebServer, DicomNode] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def shareable(server: ServerConfig) -> TypeGuard[DicomWebServer]:
        """Whether nodes of ``server`` are pooled (DICOMweb) or opened per task."""
        return isinstance(server, DicomWebServer)

    def get(self, server: DicomWebServer, opener: Callable[[], DicomNode]) -> DicomNode:
        """The pooled node of ``server``, opened with ``opener`` the first time."""
        with self._lock:
            node = self._nodes.get(server)
            if node is not None:
                self._nodes.move_to_end(server)
                return node
        node = opener()  # outside the lock: building a client may take a while
        extra: DicomNode | None
        with self._lock:
            found = self._nodes.get(server)
            if found is not None:  # another thread opened it meanwhile
                extra, node = node, found
            else:
                self._nodes[server] = node
                extra = self._evicted()
        if extra is not None:
            extra.close()
        return node

    def _evicted(self) -> DicomNode | None:
        if len(self._nodes) <= self.size:
            return None
        return self._nodes.popitem(last=False)[1]

    def __len__(self) -> int:
        with self._lock:
            return len(self._nodes)

    def close(self) -> None:
        """Close every pooled node."""
        with self._lock:
            nodes = list(self._nodes.values())
            self._nodes.clear()
        for node in nodes:
            node.close()


def worker_pool(worker: Any) -> NodePool | None:
    """The pool of a Dask worker (None when the plugin is not registered there)."""
    plugin = getattr(worker, "plugins", {}).get(PLUGIN_NAME)
    pool = getattr(plugin, "pool", None)
    return pool if isinstance(pool, NodePool) else None
