"""A pipeline: a source, steps and run settings; read from TOML, hashed, run.

The definition hash (:attr:`Pipeline.recipe_hash`, over the steps) is what
output UIDs are derived from; the job id (over name, source and steps) is what
the ledger knows a job by, so running the same file again resumes it.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicomstation.errors import ConfigError
from dicomstation.pipeline.sources import ManifestSource, Source, source_from_table
from dicomstation.pipeline.step import Step, step_from_table
from dicomstation.pipeline.table_check import build

if TYPE_CHECKING:
    from dicomstation.pipeline.driver import RunOptions, RunReport

__all__ = ["Pipeline", "RunSettings"]


@dataclass(frozen=True)
class RunSettings:
    """The ``[run]`` table: how to run (not part of the job's identity).

    Parameters
    ----------
    concurrency : int
        Work items in flight at once (in-process executor threads).
    attempts : int
        Tries per work item before it is marked failed (retryable errors only).
    workspace : str
        ``shared``: tasks work in the local database; ``temporary``: each task in
        its own temporary database, deleted when it ends.
    """

    concurrency: int = 2
    attempts: int = 3
    workspace: str = "shared"

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 64:
            raise ConfigError(f"run.concurrency must be 1..64, not {self.concurrency}")
        if not 1 <= self.attempts <= 20:
            raise ConfigError(f"run.attempts must be 1..20, not {self.attempts}")
        if self.workspace not in ("shared", "temporary"):
            raise ConfigError(f"run.workspace is shared or temporary, not {self.workspace!r}")


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Pipeline:
    """A source plus steps.

    Parameters
    ----------
    name : str
        A name for people (shown by ``dicomstation jobs list``).
    source : Source
        Where the work items come from.
    steps : tuple of Step
        What is done to each item, in order (names unique).
    settings : RunSettings
        Concurrency, attempts, workspace.
    """

    name: str
    source: Source
    steps: tuple[Step, ...]
    settings: RunSettings = field(default_factory=RunSettings)

    def __post_init__(self) -> None:
        names = [s.name for s in self.steps]
        if not names:
            raise ConfigError(f"pipeline {self.name!r} has no steps")
        doubles = sorted({n for n in names if names.count(n) > 1})
        if doubles:
            raise ConfigError(f"pipeline {self.name!r}: step names must be unique: {doubles}")
        for n, step in enumerate(self.steps):
            what = getattr(step, "what", None) if step.kind == "send" else None
            earlier = {s.kind for s in self.steps[:n]}
            if what is not None and what != "item" and what not in earlier:
                raise ConfigError(
                    f"step {step.name!r}: what = {what!r} sends what a {what!r} step made, and "
                    f"none comes before it (earlier: {sorted(earlier) or 'none'}; or 'item')"
                )

    # -- reading ---------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: Path | str) -> Pipeline:
        """Read a pipeline TOML file (ConfigError naming the file when it is bad)."""
        where = Path(path)
        try:
            table = tomllib.loads(where.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read pipeline file {where}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where}: not valid TOML: {exc}") from None
        try:
            return cls.from_dict(table, base=where.parent, default_name=where.stem)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    @classmethod
    def from_dict(
        cls, table: Mapping[str, Any], *, base: Path | None = None, default_name: str = "pipeline"
    ) -> Pipeline:
        """Build from a parsed pipeline file (see docs/pipelines.md)."""
        unknown = set(table) - {"name", "source", "steps", "run", "hash"}
        if unknown:
            raise ConfigError(f"unknown top-level key(s) {sorted(unknown)}")
        if not isinstance(table.get("source"), Mapping):
            raise ConfigError("a [source] table is required")
        raw_steps = table.get("steps", [])
        if not isinstance(raw_steps, list) or not all(isinstance(s, Mapping) for s in raw_steps):
            raise ConfigError("steps must be [[steps]] tables")
        run = table.get("run", {})
        if not isinstance(run, Mapping):
            raise ConfigError("[run] must be a table")
        settings = build(RunSettings, run, "run")
        steps = tuple(step_from_table(s, n) for n, s in enumerate(raw_steps))
        source = source_from_table(table["source"], base)
        return cls(
            str(table.get("name") or default_name), _fetching(source, steps), steps, settings
        )

    @classmethod
    def from_json(cls, text: str) -> Pipeline:
        """Inverse of :meth:`to_json` (what a task receives)."""
        return cls.from_dict(json.loads(text))

    # -- identity ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The definition as a pipeline-file table (plus its ``hash``)."""
        return {
            "name": self.name,
            "source": self.source.to_dict(),
            "steps": [s.to_dict() for s in self.steps],
            "run": {
                "concurrency": self.settings.concurrency,
                "attempts": self.settings.attempts,
                "workspace": self.settings.workspace,
            },
            "hash": self.recipe_hash,
        }

    def to_json(self) -> str:
        """Canonical JSON of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    @property
    def recipe_hash(self) -> str:
        """Hash of the steps: output UIDs derive from it and the input UIDs."""
        return _digest([s.to_dict() for s in self.steps])

    @property
    def job_id(self) -> str:
        """Hash of name, source and steps: the ledger's id of this job."""
        return _digest([self.name, self.source.to_dict(), [s.to_dict() for s in self.steps]])

    def server_names(self) -> list[str]:
        """Servers the source and steps name (``local`` excluded)."""
        named = [
            getattr(self.source, "server", None),
            *(getattr(s, "server", None) for s in self.steps),
        ]
        return sorted({str(n) for n in named if n and n != "local"})

    def kinds(self) -> dict[str, str]:
        """Step kind by step name."""
        return {s.name: s.kind for s in self.steps}

    # -- running -----------------------------------------------------------------------
    def run(self, options: RunOptions) -> RunReport:
        """Run (or resume) this pipeline; see :func:`dicomstation.pipeline.driver.run_pipeline`."""
        from dicomstation.pipeline.driver import run_pipeline

        return run_pipeline(self, options)


def _fetching(source: Source, steps: tuple[Step, ...]) -> Source:
    """A manifest without a server looks its series-only rows up where the pipeline fetches."""
    if isinstance(source, ManifestSource) and not source.server:
        server = next((str(getattr(s, "server", "")) for s in steps if s.kind == "fetch"), "")
        return replace(source, fetch_server=server)
    return source
