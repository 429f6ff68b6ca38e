"""The built-in steps: fetch, load, segment, export, send, clean-up.

Each is a frozen dataclass following :class:`~dicomstation.pipeline.step.Step`;
``to_dict`` gives back its pipeline-file table (what the definition hash covers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from pydicom.errors import InvalidDicomError as InvalidDicomFileError

from dicomstation.errors import ConfigError, NotFoundError, NothingSelectedError, TransferError
from dicomstation.export.common import ExportOptions, SourceSeries
from dicomstation.models import InstanceRef, Level, Query, SeriesRef, TransferReport
from dicomstation.pipeline.actions import fetch_item, send_files
from dicomstation.pipeline.exports import UID_ROOT, ExportInput, export_kind, export_results
from dicomstation.pipeline.model import WorkItem
from dicomstation.pipeline.segmenters import make_segmenter
from dicomstation.pipeline.selection import SeriesSelector
from dicomstation.pipeline.step import StepContext, register_step
from dicomstation.pipeline.table_check import check_value

__all__ = ["CleanupStep", "ExportStep", "FetchStep", "LoadStep", "SegmentStep", "SendStep"]

#: Modalities that are never image volumes (a load step passes over them).
NOT_IMAGES = frozenset({"SEG", "SR", "PR", "KO", "RTSTRUCT", "RTPLAN", "REG", "DOC", "OT"})


def _failed(report: TransferReport, what: str) -> None:
    if not report.failed:
        return
    shown = "; ".join(f"{uid}: {why}" for uid, why in list(report.failed.items())[:3])
    more = f" (and {len(report.failed) - 3} more)" if len(report.failed) > 3 else ""
    raise TransferError(f"{what}: {len(report.failed)} instance(s) failed: {shown}{more}")


def _select(table: Mapping[str, Any]) -> SeriesSelector:
    raw = table.get("select", {})
    if not isinstance(raw, Mapping):
        raise ConfigError("'select' must be a table of rules")
    return SeriesSelector.from_table(raw)


@dataclass(frozen=True)
class FetchStep:
    """Fetch the item (its selected series) from a server into the database."""

    kind: ClassVar[str] = "fetch"
    memory_only: ClassVar[bool] = False
    name: str
    server: str
    select: SeriesSelector = field(default_factory=SeriesSelector)

    def run(self, ctx: StepContext) -> tuple[str, ...]:
        """Retrieve; the outputs are the series fetched."""
        node = ctx.node(self.server)
        series = ctx.item.series_uids
        if not self.select.empty:
            series = self.select.remote(node, ctx.item)
            if not series:
                raise NothingSelectedError(
                    f"{ctx.item.describe()} has no series on {self.server} matching "
                    f"{self.select.to_dict()}"
                )
        item = WorkItem(ctx.item.study_uid, series)
        report = fetch_item(node, ctx.db, item, progress=ctx.progress, cancel=ctx.cancel)
        ctx.reports.append(report)
        _failed(report, f"fetch of {ctx.item.describe()} from {self.server}")
        return series or _local_series(ctx)

    def restore(self, ctx: StepContext, outputs: tuple[str, ...]) -> None:
        """Nothing to restore: the files are in the database."""

    def to_dict(self) -> dict[str, Any]:
        """Pipeline-file table."""
        return {
            "kind": self.kind,
            "name": self.name,
            "server": self.server,
            "select": self.select.to_dict(),
        }


def _local_series(ctx: StepContext) -> tuple[str, ...]:
    refs = ctx.db.find(Query(Level.SERIES, study_uid=ctx.item.study_uid))
    return tuple(r.series_uid for r in refs if isinstance(r, SeriesRef))


@dataclass(frozen=True)
class LoadStep:
    """Load the item's series that match the selection rules as volumes."""

    kind: ClassVar[str] = "load"
    memory_only: ClassVar[bool] = True
    name: str
    select: SeriesSelector = field(default_factory=SeriesSelector)

    def run(self, ctx: StepContext) -> tuple[str, ...]:
        """Load; outputs are the loaded series (NothingSelectedError when none matches)."""
        named = set(ctx.item.series_uids)
        chosen = [  # our own outputs (UIDs under UID_ROOT) only when the item names them
            uid
            for uid in self.select.local(ctx.db, ctx.item)
            if (uid in named or not uid.startswith(UID_ROOT)) and _is_image(ctx, uid)
        ]
        if not chosen:
            raise NothingSelectedError(
                f"{ctx.item.describe()}: no image series in the local database matches "
                f"{self.select.to_dict() or 'the selection'}"
            )
        from dicomstation.volumes import load_series  # as SourceSeries.from_files does

        for uid in chosen:
            loaded = load_series(ctx.db.series_files(uid))
            ctx.warnings += loaded.warnings
            ctx.series[uid] = SourceSeries.from_loaded(loaded)
        return tuple(chosen)

    def restore(self, ctx: StepContext, outputs: tuple[str, ...]) -> None:
        """Never called: a load is run again whenever a later step needs it."""

    def to_dict(self) -> dict[str, Any]:
        """Pipeline-file table."""
        return {"kind": self.kind, "name": self.name, "select": self.select.to_dict()}


#: What :func:`_is_image` reads of a series' first instance (cached header, else the file).
_IMAGE_TAGS = frozenset({"00080060", "00280002", "00280004", "00280010"})


def _is_image(ctx: StepContext, series_uid: str) -> bool:
    """Whether a local series can become a scalar volume, judged on its first instance.

    Not one of :data:`NOT_IMAGES`, not a plain Secondary Capture, with pixels (Rows)
    of one grey sample (MONOCHROME1/2: colour and palette images are pictures, not
    volumes; a waveform or a mapping has no Rows). One instance's few attributes are
    read (from its cached header when there is one).
    """
    from dicomstation.dicomjson import first_value

    refs = ctx.db.find(Query(Level.IMAGE, series_uid=series_uid, limit=1))
    first = next((r for r in refs if isinstance(r, InstanceRef)), None)
    if first is None or first.sop_class_uid == "1.2.840.10008.5.1.4.1.1.7":  # plain SC
        return False
    try:
        header = ctx.db.first_header(Level.SERIES, series_uid, _IMAGE_TAGS)
    except (OSError, ValueError, InvalidDicomFileError):  # the load names the file and why
        return True
    if first_value(header, "Modality").upper() in NOT_IMAGES or not first_value(header, "Rows"):
        return False
    samples = first_value(header, "SamplesPerPixel") or "1"
    photometric = first_value(header, "PhotometricInterpretation").upper() or "MONOCHROME2"
    return samples == "1" and photometric.startswith("MONOCHROME")


@dataclass(frozen=True)
class SegmentStep:
    """Segment every loaded series with a registered segmenter."""

    kind: ClassVar[str] = "segment"
    memory_only: ClassVar[bool] = True
    name: str
    segmenter: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        make_segmenter(self.segmenter, self.params)  # a bad definition fails before any work

    def run(self, ctx: StepContext) -> tuple[str, ...]:
        """Segment; outputs are the segmented series."""
        segmenter = make_segmenter(self.segmenter, self.params)
        return ctx.segment_each(
            self.name,
            lambda _uid, source: segmenter.segment(source.volume),
        )

    def restore(self, ctx: StepContext, outputs: tuple[str, ...]) -> None:
        """Never called: a segmentation is made again whenever a later step needs it."""

    def to_dict(self) -> dict[str, Any]:
        """Pipeline-file table."""
        return {
            "kind": self.kind,
            "name": self.name,
            "segmenter": self.segmenter,
            "params": dict(self.params),
        }


_OPTION_FIELDS = tuple(f.name for f in fields(ExportOptions))


@dataclass(frozen=True)
class ExportStep:
    """Export every loaded series as new DICOM records (kinds from the registry)."""

    kind: ClassVar[str] = "export"
    memory_only: ClassVar[bool] = False
    name: str
    kinds: tuple[str, ...]
    options: ExportOptions = field(default_factory=ExportOptions)
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.kinds:
            raise ConfigError(f"step {self.name!r}: give the export kinds, e.g. kinds = ['seg']")
        object.__setattr__(self, "kinds", tuple(export_kind(k).name for k in self.kinds))

    def run(self, ctx: StepContext) -> tuple[str, ...]:
        """Export; outputs are the new series UIDs (the same ones on every rerun)."""
        if not ctx.series:
            raise ConfigError(f"step {self.name!r}: nothing loaded to export (add a load step)")
        made: list[str] = []
        for uid, source in ctx.series.items():
            params: dict[str, Any] = {}
            for kind in self.kinds:
                params.update(self.params.get(kind, {}))
            request = ExportInput(source, self.options, ctx.segmentations.get(uid), params)
            results = export_results(ctx.db, request, self.kinds, uid_seed=ctx.seed(uid, self.name))
            ctx.exported += results
            made += [r.series_uid for r in results]
        return tuple(made)

    def restore(self, ctx: StepContext, outputs: tuple[str, ...]) -> None:
        """The exported series are in the database; their UIDs are the outputs."""

    def to_dict(self) -> dict[str, Any]:
        """Pipeline-file table."""
        options = {
            k: v for k, v in asdict(self.options).items() if v != getattr(ExportOptions(), k)
        }
        return {
            "kind": self.kind,
            "name": self.name,
            "kinds": list(self.kinds),
            **options,
            **{k: dict(v) for k, v in self.params.items()},
        }


@dataclass(frozen=True)
class SendStep:
    """Send what earlier steps made (exports by default) to a server."""

    kind: ClassVar[str] = "send"
    memory_only: ClassVar[bool] = False
    name: str
    server: str
    what: str = "export"  # outputs of steps of this kind (export, fetch, load), or "item"

    def run(self, ctx: StepContext) -> tuple[str, ...]:
        """Send (STOW-RS or C-STORE); a resend of the same UIDs is harmless.

        ``what = "item"`` sends the work item itself (its study, or its series).
        """
        if self.what == "item":
            series = ctx.item.series_uids or (ctx.item.study_uid,)
        else:
            series = ctx.outputs_of(self.what)
        if not series:
            return ()
        files = [f for uid in series for f in ctx.db.files_of(uid)]
        if not files:
            raise NotFoundError(f"{ctx.item.describe()}: nothing to send in the database")
        node = ctx.node(self.server)
        report = send_files(node, files, progress=ctx.progress, cancel=ctx.cancel)
        ctx.reports.append(report)
        _failed(report, f"send of {ctx.item.describe()} to {self.server}")
        return series

    def restore(self, ctx: StepContext, outputs: tuple[str, ...]) -> None:
        """Nothing to restore."""

    def to_dict(self) -> dict[str, Any]:
        """Pipeline-file table."""
        return {"kind": self.kind, "name": self.name, "server": self.server, "what": self.what}


@dataclass(frozen=True)
class CleanupStep:
    """Delete what the item left in the database: its source series, results, or both."""

    kind: ClassVar[str] = "cleanup"
    memory_only: ClassVar[bool] = False
    name: str
    what: str = "source"  # source, results or all

    def __post_init__(self) -> None:
        if self.what not in ("source", "results", "all"):
            raise ConfigError(f"step {self.name!r}: 'what' is source, results or all")

    def run(self, ctx: StepContext) -> tuple[str, ...]:
        """Delete; outputs are the series deleted."""
        results = ctx.outputs_of(ExportStep.kind)
        chosen: list[str] = []
        if self.what in ("source", "all"):
            chosen += [uid for uid in _local_series(ctx) if uid not in results]
        if self.what in ("results", "all"):
            chosen += list(results)
        for uid in chosen:
            ctx.db.delete(uid)
        return tuple(chosen)

    def restore(self, ctx: StepContext, outputs: tuple[str, ...]) -> None:
        """Nothing to restore."""

    def to_dict(self) -> dict[str, Any]:
        """Pipeline-file table."""
        return {"kind": self.kind, "name": self.name, "what": self.what}


def _export(name: str, table: Mapping[str, Any]) -> ExportStep:
    kinds = table.get("kinds", table.get("kind_list", ()))
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    options = ExportOptions(**{k: table[k] for k in _OPTION_FIELDS if k in table})
    params = {str(k): dict(v) for k, v in table.items() if isinstance(v, Mapping)}
    unknown = set(table) - {"kinds", *_OPTION_FIELDS, *params}
    if unknown:
        raise ConfigError(f"step {name!r}: unknown field(s) {sorted(unknown)}")
    return ExportStep(name, tuple(str(k) for k in kinds), options, params)


def _table(name: str, table: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = table.get(key, {})
    check_value(value, Mapping[str, Any], f"step {name!r}.{key}")
    return dict(value)


def _checked(name: str, table: Mapping[str, Any], allowed: set[str]) -> Mapping[str, Any]:
    unknown = set(table) - allowed
    if unknown:
        raise ConfigError(f"step {name!r}: unknown field(s) {sorted(unknown)}")
    return table


register_step(
    "fetch",
    lambda n, t: FetchStep(n, str(_checked(n, t, {"server", "select"})["server"]), _select(t)),
)
register_step("load", lambda n, t: LoadStep(n, _select(_checked(n, t, {"select"}))))
register_step(
    "segment",
    lambda n, t: SegmentStep(
        n,
        str(_checked(n, t, {"segmenter", "params"}).get("segmenter", "threshold")),
        _table(n, t, "params"),
    ),
)
register_step("export", _export)
register_step(
    "send",
    lambda n, t: SendStep(
        n, str(_checked(n, t, {"server", "what"})["server"]), str(t.get("what", "export"))
    ),
)
register_step(
    "cleanup", lambda n, t: CleanupStep(n, str(_checked(n, t, {"what"}).get("what", "source")))
)
