"""The bodies of the transfer steps, and one-shot runs for single commands.

:func:`fetch_item` and :func:`send_files` are what the fetch and send steps do,
and what ``dicomstation fetch`` / ``send`` and the web UI's transfer jobs call:
one place where a retrieve into the database or a store is done.
:func:`run_now` runs a pipeline's steps for its items right here, raising the
first error as it is (for ``dicomstation segment`` and other single commands).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dicomstation.config import LocalNodeConfig, ServerConfig
from dicomstation.database.importer import expand_paths
from dicomstation.models import TransferReport
from dicomstation.nodes.base import CancelToken, DicomNode, ProgressCallback
from dicomstation.pipeline.model import WorkItem
from dicomstation.pipeline.step import StepContext

if TYPE_CHECKING:
    from dicomstation.database import Database
    from dicomstation.pipeline.definition import Pipeline

__all__ = ["content_seed", "fetch_item", "files_of", "run_now", "send_files"]


def fetch_item(
    node: DicomNode,
    db: Database,
    item: WorkItem,
    instances: Sequence[str] = (),
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> TransferReport:
    """Retrieve a work item (study, its series, or some instances) into ``db``."""
    return node.retrieve(
        item.study_uid, item.series_uids, instances, into=db, progress=progress, cancel=cancel
    )


def send_files(
    node: DicomNode,
    files: Iterable[Path],
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> TransferReport:
    """Store files on a node (STOW-RS or C-STORE, whichever it speaks)."""
    return node.store(list(files), progress=progress, cancel=cancel)


def files_of(db: Database, items: Sequence[str]) -> list[Path]:
    """Files of study/series/instance UIDs of ``db``, or of files and folders given by path."""
    files: list[Path] = []
    for item in items:
        if Path(item).exists():
            files += [Path(p) for p in expand_paths(item)]
        else:
            files += db.files_of(item)
    return files


def content_seed(*parts: object) -> str:
    """A UID seed from the inputs of an export made outside a pipeline (same inputs, same UIDs)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else repr(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def run_now(
    pipeline: Pipeline,
    db: Database,
    *,
    servers: Mapping[str, ServerConfig] | None = None,
    local: LocalNodeConfig | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> list[StepContext]:
    """Run every step for every item of ``pipeline`` here, without a ledger; errors propagate.

    Returns each item's finished :class:`StepContext` (outputs, exports, reports, the
    geometry warnings of what was loaded). The steps' warnings are issued as they
    happen, to whatever the application set up.
    """
    contexts = []
    for item in pipeline.source.items(lambda name: _no_remote_source(name)):
        ctx = StepContext(
            db,
            item,
            pipeline.recipe_hash,
            servers or {},
            local,
            cancel or CancelToken(),
            progress,
            kinds=pipeline.kinds(),
        )
        try:
            for step in pipeline.steps:
                ctx.outputs[step.name] = step.run(ctx)
        finally:
            ctx.close()
        contexts.append(ctx)
    return contexts


def _no_remote_source(name: str) -> DicomNode:
    from dicomstation.errors import ConfigError

    raise ConfigError(f"run_now takes explicit items, not a query on {name!r}")
