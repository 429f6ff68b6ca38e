"""The step protocol, the per-task working state steps share, and the step registry.

Calling convention: every step is a frozen dataclass with a unique ``name`` and
``run(ctx) -> outputs``. ``ctx`` is the :class:`StepContext` of one work item
in one task: the database, lazily opened nodes, the cancel token, the outputs
of earlier steps (this run or, from the ledger, an earlier one) and the
in-memory results (loaded series, segmentations, exports). ``outputs`` is the
tuple of UIDs the step produced or touched; it goes into the ledger. A step
that was done in an earlier run is not run again; :meth:`Step.restore` puts
what later steps need back into the context from its recorded outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from dicomstation.config import LocalNodeConfig, ServerConfig
from dicomstation.errors import ConfigError
from dicomstation.models import TransferReport
from dicomstation.nodes.base import CancelToken, DicomNode, ProgressCallback

if TYPE_CHECKING:
    from dicomstation.database import Database
    from dicomstation.export.common import SourceSeries
    from dicomstation.pipeline.exports import Exported
    from dicomstation.pipeline.model import WorkItem
    from dicomstation.pipeline.nodepool import NodePool
    from dicomstation.pipeline.segmenters import Segmentation

__all__ = ["Step", "StepContext", "register_step", "step_from_table", "step_kinds"]


@dataclass
class StepContext:
    """The working state of one work item in one task (not shared, not persisted).

    Attributes
    ----------
    db : Database
        The database the task works in (shared local one, or its own temporary one).
    item : WorkItem
        The work item.
    recipe_hash : str
        Hash of the pipeline's steps: output UIDs are derived from it and the inputs.
    servers : mapping of str to ServerConfig
        Servers steps may name.
    local : LocalNodeConfig or None
        Our DIMSE identity.
    cancel : CancelToken
        Set when the run is stopping; long steps pass it on.
    progress : callable or None
        Transfer progress events of the running step.
    outputs : dict of str to tuple of str
        Outputs of the steps done so far, by step name.
    kinds : dict of str to str
        Kind of every step of the pipeline, by name (a send finds the exports).
    series : dict of str to SourceSeries
        Loaded series (by series UID), from a load step.
    segmentations : dict of str to Segmentation
        Segmentations by source series UID, from a segment step.
    exported : list of Exported
        What export steps wrote.
    warnings : list of str
        The geometry warnings of the series loaded (``LoadedVolume.warnings``), as data.
        Warnings themselves are issued as usual and reach whatever the application set
        up: steps never touch the warnings module's process-wide state (filters,
        ``showwarning``), which is not thread-safe and which the in-process executor's
        threads, the web UI and the user's own threads share.
    reports : list of TransferReport
        Transfer reports of fetch and send steps.
    pool : NodePool or None
        Nodes shared with the other tasks of this process (DICOMweb clients);
        None: every node is opened for this task and closed with it.
    """

    db: Database
    item: WorkItem
    recipe_hash: str
    servers: Mapping[str, ServerConfig] = field(default_factory=dict, repr=False)
    local: LocalNodeConfig | None = None
    cancel: CancelToken = field(default_factory=CancelToken)
    progress: ProgressCallback | None = None
    outputs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    series: dict[str, SourceSeries] = field(default_factory=dict)
    segmentations: dict[str, Segmentation] = field(default_factory=dict)
    exported: list[Exported] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reports: list[TransferReport] = field(default_factory=list)
    pool: NodePool | None = field(default=None, repr=False)
    _nodes: dict[str, DicomNode] = field(default_factory=dict, repr=False)
    _pooled: set[str] = field(default_factory=set, repr=False)

    def node(self, name: str) -> DicomNode:
        """The node of a configured server (opened once per task); ``local`` is the database."""
        found = self._nodes.get(name)
        if found is None:
            found = self._open(name)
            self._nodes[name] = found
        return found

    def segment_each(
        self, step: str, segment: Callable[[str, SourceSeries], Segmentation]
    ) -> tuple[str, ...]:
        """Segment every loaded series with ``segment(uid, source)``; outputs: their UIDs."""
        if not self.series:
            raise ConfigError(f"step {step!r}: nothing loaded to segment (add a load step)")
        for uid, source in self.series.items():
            self.segmentations[uid] = segment(uid, source)
        return tuple(self.series)

    def _open(self, name: str) -> DicomNode:
        from dicomstation.nodes import open_node
        from dicomstation.nodes.local import LocalNode

        if name == "local":
            return LocalNode(self.db)
        server = self.servers.get(name)
        if server is None:
            known = ", ".join(sorted(self.servers)) or "none"
            raise ConfigError(
                f"the pipeline names server {name!r}, which is not configured ({known})"
            )
        if self.pool is not None and self.pool.shareable(server):
            self._pooled.add(name)
            return self.pool.get(server, lambda: open_node(server, local=self.local))
        return open_node(server, local=self.local)

    def close(self) -> None:
        """Close every node opened for this task (pooled ones stay open for the next)."""
        for name, node in self._nodes.items():
            if name not in self._pooled:
                node.close()
        self._nodes.clear()
        self._pooled.clear()

    def seed(self, *parts: str) -> str:
        """A UID seed from the recipe and ``parts`` (input UIDs, kinds)."""
        return "/".join((self.recipe_hash, *parts))

    def outputs_of(self, kind: str) -> tuple[str, ...]:
        """Outputs of every step of ``kind`` done so far, in pipeline order."""
        found: list[str] = []
        for name, outputs in self.outputs.items():
            if self.kinds.get(name) == kind:
                found += [uid for uid in outputs if uid not in found]
        return tuple(found)


@runtime_checkable
class Step(Protocol):
    """One step of a pipeline."""

    kind: ClassVar[str]
    memory_only: ClassVar[bool]  # its results live only in memory (load, segment)

    @property
    def name(self) -> str:
        """The step's name, unique in its pipeline (the ledger's key)."""
        ...

    def run(self, ctx: StepContext) -> tuple[str, ...]:
        """Do the step for ``ctx.item``; return the UIDs produced or touched."""
        ...

    def restore(self, ctx: StepContext, outputs: tuple[str, ...]) -> None:
        """The step was done in an earlier run: put back what later steps need."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """The step as a pipeline-file table (``kind``, ``name``, parameters)."""
        ...


StepFactory = Callable[[str, Mapping[str, Any]], Step]
_REGISTRY: dict[str, StepFactory] = {}
# Modules whose import registers the shipped step kinds (a new kind: one module + one line here).
_BUILTIN_STEP_MODULES = (
    "dicomstation.pipeline.steps",
    "dicomstation.deid.step",
    "dicomstation.pipeline.ui_exports",  # scene_segmentation, rtstruct_labelmap (UI export jobs)
)


def register_step(kind: str, factory: StepFactory) -> None:
    """Make ``factory(name, table)`` the builder of steps of ``kind``."""
    _REGISTRY[kind.strip().lower()] = factory


def step_kinds() -> list[str]:
    """Registered step kinds."""
    for module in _BUILTIN_STEP_MODULES:
        import_module(module)  # registers the built-ins

    return sorted(_REGISTRY)


def step_from_table(table: Mapping[str, Any], position: int) -> Step:
    """Build a step from its pipeline-file table (ConfigError naming the bad step)."""
    known = step_kinds()
    kind = str(table.get("kind", "")).strip().lower()
    if kind not in _REGISTRY:
        raise ConfigError(f"step {position + 1}: unknown kind {kind!r}; known: {', '.join(known)}")
    name = str(table.get("name") or kind)
    params = {k: v for k, v in table.items() if k not in ("kind", "name")}
    try:
        return _REGISTRY[kind](name, params)
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"step {position + 1} ({name}): {exc}") from None
