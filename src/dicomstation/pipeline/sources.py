"""Where work items come from: a query on a server, a manifest file, the local database.

A source runs on the driver only; it yields :class:`WorkItem` values (studies,
or series of a study) and describes itself as a pipeline-file table, which is
part of the job's identity (the same source and steps are the same job).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from dicomstation.errors import ConfigError, NotFoundError
from dicomstation.models import Level, Query, SeriesRef, StudyRef
from dicomstation.pipeline.exports import UID_ROOT
from dicomstation.pipeline.manifest import ManifestRow, checked_uid, read_manifest
from dicomstation.pipeline.model import WorkItem
from dicomstation.pipeline.table_check import build, check_value

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

#: series UIDs per query when a manifest's rows name no study (a UID list: ~3 kB of URL)
_SERIES_PER_QUERY = 50


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

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"source limit must be 1 or more, not {self.limit}")

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
    """A manifest file of StudyInstanceUID[, SeriesInstanceUID] (:mod:`.manifest`).

    Rows of the same study with series UIDs become one item with those series
    (unless ``per_series``); a row without a series UID means the whole study.
    Rows that name only a series (a TCIA manifest, an IDC series list) get their
    study from ``server``, asked once per 50 series; without one, from the server
    the pipeline's first fetch step fetches from (``fetch_server``, set by
    :meth:`Pipeline.from_dict`, not part of the pipeline file).
    """

    path: Path
    per_series: bool = False
    server: str = ""
    fetch_server: str = field(default="", compare=False)

    def items(self, open_node: NodeOpener) -> Iterator[WorkItem]:
        """The manifest's items, in file order."""
        rows = read_manifest(self.path)
        studies = self._studies_of([row for row in rows if not row.study], open_node)
        chosen: dict[str, list[str]] = {}
        whole: set[str] = set()
        for row in rows:
            study = row.study or studies[row.series]
            series = chosen.setdefault(study, [])
            if row.series and row.series not in series:
                series.append(row.series)
            elif not row.series:
                whole.add(study)
        for study, series in chosen.items():
            if study in whole or not series:
                yield WorkItem(study)
            elif self.per_series:
                yield from (WorkItem(study, (uid,)) for uid in series)
            else:
                yield WorkItem(study, tuple(series))

    def _studies_of(self, rows: list[ManifestRow], open_node: NodeOpener) -> dict[str, str]:
        """series -> study for rows naming only a series (a query on ``server``)."""
        server = self.server or self.fetch_server
        if not rows:
            return {}
        if not server:
            raise ConfigError(
                f"{rows[0].where}: series {rows[0].series} has no StudyInstanceUID; give the "
                'manifest source the server that holds it (server = "NAME")'
            )
        node, found = open_node(server), {}
        wanted = list(dict.fromkeys(row.series for row in rows))
        for start in range(0, len(wanted), _SERIES_PER_QUERY):
            uids = "\\".join(wanted[start : start + _SERIES_PER_QUERY])
            for ref in node.find(Query(Level.SERIES, {"SeriesInstanceUID": uids})):
                if isinstance(ref, SeriesRef):
                    found[ref.series_uid] = ref.study_uid
        missing = [row for row in rows if row.series not in found]
        if missing:
            raise NotFoundError(
                f"{len(missing)} series of the manifest are not on {server} "
                f"(the first: {missing[0].series}, {missing[0].where})"
            )
        return found

    def to_dict(self) -> dict[str, Any]:
        """Pipeline-file table."""
        table: dict[str, Any] = {"kind": "manifest", "path": str(self.path)}
        table.update({"per_series": True} if self.per_series else {})
        return table | ({"server": self.server} if self.server else {})


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


def _item(key: str, where: str) -> WorkItem:
    """The work item of a key ``STUDY`` or ``STUDY/SERIES,...``, its UIDs checked."""
    item = WorkItem.from_key(key)
    for uid in (item.study_uid, *item.series_uids):
        checked_uid(uid, f"{where} ({key!r})")
    return item


def source_from_table(table: Mapping[str, Any], base: Path | None = None) -> Source:
    """Build a source from the pipeline file's ``[source]`` table (paths relative to ``base``)."""
    kind = str(table.get("kind", "")).lower()
    rest = {k: v for k, v in table.items() if k != "kind"}
    where = f"source ({kind})"
    filters = rest.get("filters")
    if isinstance(filters, Mapping):  # SeriesNumber = 3: a number is matched as its text
        numbers = (int, float)
        rest["filters"] = {
            k: str(v) if isinstance(v, numbers) and not isinstance(v, bool) else v
            for k, v in filters.items()
        }
    try:
        if kind == "query":
            return build(QuerySource, rest, where)
        if kind == "local":
            return build(LocalSource, rest, where)
        if kind == "manifest":
            check_value(rest.get("path"), str, f"{where}.path")
            path = Path(str(rest.pop("path")))
            return build(
                ManifestSource,
                rest,
                where,
                path=(base / path) if base and not path.is_absolute() else path,
            )
        if kind == "items":
            check_value(rest.get("items"), list[str], f"{where}.items")
            return ItemsSource(tuple(_item(str(k), f"{where}.items") for k in rest["items"]))
    except (TypeError, KeyError) as exc:
        raise ConfigError(f"source ({kind}): bad or missing field {exc}") from None
    raise ConfigError(f"unknown source kind {kind!r}: query, manifest, local or items")
