"""Where work items come from: a query on a server, a manifest file, the local database.

A source runs on the driver only; it yields :class:`WorkItem` values (studies,
or series of a study) and describes itself as a pipeline-file table, which is
part of the job's identity (the same source and steps are the same job).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from dicomstation.errors import ConfigError
from dicomstation.models import Level, Query, SeriesRef, StudyRef
from dicomstation.pipeline.exports import UID_ROOT
from dicomstation.pipeline.model import WorkItem

if TYPE_CHECKING:
    from dicomstation.nodes import DicomNode

__all__ = [
    "ItemsSource",
    "LocalSource",
    "ManifestSource",
    "QuerySource",
    "Source",
    "source_from_table",
]

NodeOpener = Callable[[str], "DicomNode"]

_STUDY_KEYS = ("StudyInstanceUID", "study_uid", "study", "0020000D")
_SERIES_KEYS = ("SeriesInstanceUID", "series_uid", "series", "0020000E")


@runtime_checkable
class Source(Protocol):
    """A cohort: yields the work items of a run."""

    def items(self, open_node: NodeOpener) -> Iterator[WorkItem]:
        """Yield work items (``open_node(name)`` opens a server, ``local`` the database)."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """The source as a pipeline-file table (``kind`` and parameters)."""
        ...


def _query(level: str, filters: Mapping[str, Any], limit: int | None) -> Query:
    parsed = Level.parse(level)
    if parsed not in (Level.STUDY, Level.SERIES):
        raise ConfigError(f"a pipeline source queries studies or series, not {level!r}")
    return Query(parsed, {str(k): str(v) for k, v in filters.items()}, limit=limit)


def _from_refs(refs: Sequence[Any], per_series: bool) -> Iterator[WorkItem]:
    seen: dict[str, list[str]] = {}
    for ref in refs:
        if isinstance(ref, StudyRef):
            seen.setdefault(ref.study_uid, [])
        elif isinstance(ref, SeriesRef):
            seen.setdefault(ref.study_uid, []).append(ref.series_uid)
    for study, series in seen.items():
        if per_series:
            yield from (WorkItem(study, (uid,)) for uid in series)
        else:
            yield WorkItem(study, tuple(series))


@dataclass(frozen=True)
class QuerySource:
    """Studies (or series) matching a QIDO-RS / C-FIND query on a configured server.

    ``level = "series"`` with ``per_series`` makes one item per series; otherwise
    matching series of a study form one item.
    """

    server: str
    level: str = "study"
    filters: Mapping[str, str] = field(default_factory=dict)
    limit: int | None = None
    per_series: bool = False

    def items(self, open_node: NodeOpener) -> Iterator[WorkItem]:
        """Query the server."""
        refs = open_node(self.server).find(_query(self.level, self.filters, self.limit))
        return _from_refs(refs, self.per_series)

    def to_dict(self) -> dict[str, Any]:
        """Pipeline-file table."""
        table: dict[str, Any] = {"kind": "query", "server": self.server, "level": self.level}
        table["filters"] = dict(self.filters)
        table.update({"limit": self.limit} if self.limit else {})
        table.update({"per_series": True} if self.per_series else {})
        return table


@dataclass(frozen=True)
class LocalSource(QuerySource):
    """Studies (or series) of the local database matching a query."""

    server: str = "local"

    def items(self, open_node: NodeOpener) -> Iterator[WorkItem]:
        """Query the database; series this software exported (UIDs under our root) are left out."""
        refs = open_node(self.server).find(_query(self.level, self.filters, self.limit))
        own = [r for r in refs if not str(getattr(r, "series_uid", "")).startswith(UID_ROOT)]
        return _from_refs(own, self.per_series)

    def to_dict(self) -> dict[str, Any]:
        """Pipeline-file table."""
        table = super().to_dict()
        table["kind"] = "local"
        del table["server"]
        return table


@dataclass(frozen=True)
class ManifestSource:
    """A manifest file: CSV with a header, or JSON lines, of StudyInstanceUID[, SeriesInstanceUID].

    Rows of the same study with series UIDs become one item with those series
    (unless ``per_series``); a row without a series UID means the whole study.
    """

    path: Path
    per_series: bool = False

    def rows(self) -> list[tuple[str, str]]:
        """(study, series or "") per row; ConfigError naming the file and line when bad."""
        try:
            text = self.path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise ConfigError(f"cannot read manifest {self.path}: {exc}") from None
        if self.path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            return _json_rows(self.path, text)
        return _csv_rows(self.path, text)

    def items(self, open_node: NodeOpener) -> Iterator[WorkItem]:
        """The manifest's items, in file order."""
        studies: dict[str, list[str]] = {}
        whole: set[str] = set()
        for study, series in self.rows():
            studies.setdefault(study, [])
            if series and series not in studies[study]:
                studies[study].append(series)
            elif not series:
                whole.add(study)
        for study, chosen in studies.items():
            if study in whole or not chosen:
                yield WorkItem(study)
            elif self.per_series:
                yield from (WorkItem(study, (uid,)) for uid in chosen)
            else:
                yield WorkItem(study, tuple(chosen))

    def to_dict(self) -> dict[str, Any]:
        """Pipeline-file table."""
        table: dict[str, Any] = {"kind": "manifest", "path": str(self.path)}
        return table | ({"per_series": True} if self.per_series else {})


def _pick(row: Mapping[str, Any], keys: Sequence[str]) -> str:
    for key in keys:
        value = row.get(key)
        if value:
            return str(value).strip()
    return ""


def _check_uid(value: str, where: str) -> str:
    if not value or len(value) > 64 or not all(c.isdigit() or c == "." for c in value):
        raise ConfigError(f"{where}: {value!r} is not a DICOM UID")
    return value


def _csv_rows(path: Path, text: str) -> list[tuple[str, str]]:
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or not set(reader.fieldnames) & set(_STUDY_KEYS):
        raise ConfigError(f"{path}: the CSV header must name a StudyInstanceUID column")
    rows: list[tuple[str, str]] = []
    for number, row in enumerate(reader, start=2):
        study = _check_uid(_pick(row, _STUDY_KEYS), f"{path}:{number}")
        series = _pick(row, _SERIES_KEYS)
        rows.append((study, _check_uid(series, f"{path}:{number}") if series else ""))
    return rows


def _json_rows(path: Path, text: str) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number}: not JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{path}:{number}: each line must be a JSON object")
        study = _check_uid(_pick(row, _STUDY_KEYS), f"{path}:{number}")
        series = _pick(row, _SERIES_KEYS)
        rows.append((study, _check_uid(series, f"{path}:{number}") if series else ""))
    return rows


@dataclass(frozen=True)
class ItemsSource:
    """Explicit work items (what a CLI command or a UI action names)."""

    work: tuple[WorkItem, ...]

    def items(self, open_node: NodeOpener) -> Iterator[WorkItem]:
        """The items as given."""
        return iter(self.work)

    def to_dict(self) -> dict[str, Any]:
        """Pipeline-file table."""
        return {"kind": "items", "items": [item.key for item in self.work]}


def source_from_table(table: Mapping[str, Any], base: Path | None = None) -> Source:
    """Build a source from the pipeline file's ``[source]`` table (paths relative to ``base``)."""
    kind = str(table.get("kind", "")).lower()
    rest = {k: v for k, v in table.items() if k != "kind"}
    try:
        if kind == "query":
            return QuerySource(**rest)
        if kind == "local":
            return LocalSource(**rest)
        if kind == "manifest":
            path = Path(str(rest.pop("path")))
            return ManifestSource(
                (base / path) if base and not path.is_absolute() else path, **rest
            )
        if kind == "items":
            return ItemsSource(tuple(WorkItem.from_key(str(k)) for k in rest["items"]))
    except (TypeError, KeyError) as exc:
        raise ConfigError(f"source ({kind}): bad or missing field {exc}") from None
    raise ConfigError(f"unknown source kind {kind!r}: query, manifest, local or items")
