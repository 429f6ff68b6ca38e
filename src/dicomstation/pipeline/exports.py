"""Export kinds as one registry, and the one function that runs an export.

Each kind (``seg``, ``sr``, ``sc``, ``derived``, ``pm``, ``bundle``) is an
:class:`ExportSpec` registered with :func:`register_export_kind`: a builder
(``ExportInput -> datasets``), its default series-number offset and what it
needs. A new export type is one module that defines a builder and registers
it. :func:`export_results` is what the CLI, the web UI and the pipeline's
export step all call: it picks series numbers that do not collide within the
study, derives UIDs from a seed (so a rerun makes the same objects, which the
database then already has), and imports everything in one go.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import import_module
from typing import TYPE_CHECKING, Any

from dicomstation.errors import ConfigError, ExportError
from dicomstation.models import Level, Query, SeriesRef

if TYPE_CHECKING:  # pydicom, highdicom, numpy and scipy: imported when a kind is built
    from pydicom.dataset import Dataset

    from dicomstation.database import Database
    from dicomstation.export.bundle import SceneSegmentation
    from dicomstation.export.common import ExportOptions, SourceSeries
    from dicomstation.pipeline.segmenters import Segmentation
    from dicomstation.processing.stats import SegmentStatistics

#: Root of derived UIDs: highdicom's registered root, on an arc of our own (its random
#: UIDs use arc 3).
UID_ROOT = "1.2.826.0.1.3680043.10.511.7."

__all__ = [
    "UID_ROOT",
    "ExportInput",
    "ExportSpec",
    "Exported",
    "Kind",
    "derived_uid",
    "export_kind",
    "export_kinds",
    "export_results",
    "register_export_kind",
    "stamp_uids",
]


class Kind(enum.StrEnum):
    """The built-in export kinds (the registry may hold more)."""

    SEG = "seg"
    SR = "sr"
    SC = "sc"
    DERIVED = "derived"
    PM = "pm"
    BUNDLE = "bundle"


@dataclass(frozen=True)
class ExportInput:
    """What a builder gets.

    Attributes
    ----------
    source : SourceSeries
        The image series the result belongs to.
    options : ExportOptions
        Tags, with the series number already chosen.
    segmentation : Segmentation or None
        The segmentation of ``source`` (SEG, SR, overlays).
    params : mapping
        Kind-specific parameters (``view``, ``smooth_mm``...).
    built : mapping of str to tuple of Dataset
        What earlier kinds of the same export built (the SR reads the SEG).
    statistics : tuple of SegmentStatistics
        Statistics of the segmentation, when computed.
    volumes : tuple of SourceSeries
        More series (a bundle's extra volumes).
    scene_segmentations : tuple of SceneSegmentation
        Existing SEGs (a bundle's extra label maps).
    """

    source: SourceSeries
    options: ExportOptions
    segmentation: Segmentation | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    built: Mapping[str, tuple[Dataset, ...]] = field(default_factory=dict)
    statistics: tuple[SegmentStatistics, ...] = ()
    volumes: tuple[SourceSeries, ...] = ()
    scene_segmentations: tuple[SceneSegmentation, ...] = ()


Builder = Callable[[ExportInput], Sequence["Dataset"]]


@dataclass(frozen=True)
class ExportSpec:
    """A registered export kind.

    Attributes
    ----------
    name : str
        Normalised kind name (lower case).
    build : callable
        ``ExportInput -> datasets`` (one series).
    series_offset : int
        Default series number: the source's plus this.
    requires : tuple of str
        Kinds whose output this one reads from ``built`` (built first, same export).
    needs_segmentation : bool
        Whether it needs :attr:`ExportInput.segmentation`.
    """

    name: str
    build: Builder
    series_offset: int
    requires: tuple[str, ...] = ()
    needs_segmentation: bool = False


_REGISTRY: dict[str, ExportSpec] = {}
_BUILTIN_KINDS = frozenset(kind.value for kind in Kind)


def register_export_kind(spec: ExportSpec) -> None:
    """Register (or replace) an export kind (the built-ins are loaded before one of them is
    replaced, so the replacement stands)."""
    name = spec.name.strip().lower()
    if name in _BUILTIN_KINDS:
        _builtins()
    _REGISTRY[name] = spec


def export_kinds() -> list[str]:
    """Registered kind names."""
    _builtins()
    return sorted(_REGISTRY)


def export_kind(name: str | Kind) -> ExportSpec:
    """The kind named ``name`` (``"SEG"``, ``"seg"``, ``Kind.SEG``...); ConfigError if unknown.

    The built-ins (highdicom, numpy, scipy) are imported when a kind not registered yet is
    named: a kind of one's own is used without them."""
    key = str(name).strip().lower()
    if key not in _REGISTRY:
        _builtins()
    spec = _REGISTRY.get(key)
    if spec is None:
        raise ConfigError(f"unknown export kind {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return spec


def _builtins() -> None:
    import_module("dicomstation.pipeline.builtin_exports")  # registers the built-ins


@dataclass(frozen=True)
class Exported:
    """What an export wrote into the database.

    Attributes
    ----------
    kind : str
        Normalised kind name (``seg``, ``sr``...).
    series_uid : str
        The new series.
    sop_uids : tuple of str
        Its instances.
    series_number : int or None
        Its series number.
    statistics : tuple of SegmentStatistics
        For SR exports: the statistics reported.
    existed : bool
        True when the database already held it (a rerun): nothing new was made.
    """

    kind: str
    series_uid: str
    sop_uids: tuple[str, ...]
    series_number: int | None = None
    statistics: tuple[SegmentStatistics, ...] = field(default=())
    existed: bool = False


def ordered_kinds(kinds: Sequence[str | Kind]) -> list[ExportSpec]:
    """Specs for ``kinds`` with their requirements first (SEG before SR), no duplicates."""
    ordered: dict[str, ExportSpec] = {}

    def add(name: str | Kind) -> None:
        spec = export_kind(name)
        for required in spec.requires:
            add(required)
        ordered.setdefault(spec.name, spec)

    for kind in kinds:
        add(kind)
    return list(ordered.values())


def _taken_numbers(db: Database, study_uid: str) -> set[int]:
    refs = db.find(Query(Level.SERIES, study_uid=study_uid))
    return {r.series_number for r in refs if isinstance(r, SeriesRef) and r.series_number}


def _free_number(wanted: int, taken: set[int]) -> int:
    number = max(1, wanted)
    while number in taken:
        number += 1
    taken.add(number)
    return number


def export_results(
    db: Database,
    request: ExportInput,
    kinds: Sequence[str | Kind],
    *,
    uid_seed: str | None = None,
) -> list[Exported]:
    """Build ``kinds`` for ``request.source`` and import them all into ``db`` at once.

    Parameters
    ----------
    db : Database
        Where the results go (and whose study decides which series numbers are free).
    request : ExportInput
        Source, options (an explicit series number is the first one tried), inputs.
    kinds : sequence of str or Kind
        What to export; requirements are added (an SR brings its SEG).
    uid_seed : str or None
        Derive every new UID from this seed (idempotent reruns); None: random UIDs.

    Raises
    ------
    ExportError
        When a kind cannot be built from what is given, or the database refuses a file.
    """
    specs = [spec for spec in ordered_kinds(kinds) if spec.name not in request.built]
    wants_sr = any(spec.name == Kind.SR for spec in specs)
    if wants_sr and request.segmentation is not None and not request.statistics:
        request = replace(request, statistics=_statistics(request))
    taken = _taken_numbers(db, str(request.source.first.StudyInstanceUID))
    built: dict[str, tuple[Dataset, ...]] = dict(request.built)
    numbers: dict[str, int] = {}
    for spec in specs:
        if spec.needs_segmentation and request.segmentation is None:
            raise ExportError(f"a {spec.name.upper()} export needs a segmentation; segment first")
        first = request.options.series_number
        wanted = first + len(numbers) if first is not None else None
        default = request.options.number(request.source.first, spec.series_offset)
        number = _free_number(wanted or default, taken)
        step = replace(request, options=replace(request.options, series_number=number), built=built)
        datasets = tuple(spec.build(step))
        if not datasets:
            raise ExportError(f"the {spec.name} export of {request.source.series_uid} made nothing")
        if uid_seed:
            stamp_uids(datasets, f"{uid_seed}/{spec.name}")
        built[spec.name], numbers[spec.name] = datasets, number
    return _import(db, built, numbers, request)


def _statistics(request: ExportInput) -> tuple[SegmentStatistics, ...]:
    from dicomstation.export.common import with_areas
    from dicomstation.processing import segment_statistics

    segmentation = request.segmentation
    assert segmentation is not None
    stats = segment_statistics(request.source.volume, segmentation.masks(), segmentation.names())
    return with_areas(stats, request.source)  # a projection image: areas, not volumes


def _import(
    db: Database,
    built: Mapping[str, tuple[Dataset, ...]],
    numbers: Mapping[str, int],
    request: ExportInput,
) -> list[Exported]:
    fresh = [ds for kind in numbers for ds in built[kind]]
    present = db.has_instances(str(ds.SOPInstanceUID) for ds in fresh)
    new = [ds for ds in fresh if str(ds.SOPInstanceUID) not in present]
    if new:
        from dicomstation.export.common import import_into

        report = import_into(db, new)  # every kind of the export or none reaches the database
        if report.failed:
            raise ExportError(f"the database refused exported files: {dict(report.failed)}")
    return [
        Exported(
            kind,
            str(built[kind][0].SeriesInstanceUID),
            tuple(str(ds.SOPInstanceUID) for ds in built[kind]),
            numbers[kind],
            request.statistics if kind == Kind.SR else (),
            all(str(ds.SOPInstanceUID) in present for ds in built[kind]),
        )
        for kind in numbers
    ]


def derived_uid(*parts: str) -> str:
    """A UID derived from ``parts`` (the same parts always give the same UID)."""
    from pydicom.uid import generate_uid

    return generate_uid(prefix=UID_ROOT, entropy_srcs=list(parts))


def stamp_uids(datasets: Sequence[Dataset], seed: str) -> None:
    """Give one new series its Series and SOP Instance UIDs derived from ``seed``.

    Called right after building each kind, before any later kind reads it (the
    SR then references the SEG's derived UIDs), so a rerun rebuilds objects with
    the very UIDs the database and the servers already hold.
    """
    series_uid = derived_uid(seed, "series")
    for number, ds in enumerate(datasets):
        sop_uid = derived_uid(seed, "instance", str(number))
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = sop_uid
        meta = getattr(ds, "file_meta", None)
        if meta is not None and "MediaStorageSOPInstanceUID" in meta:
            meta.MediaStorageSOPInstanceUID = sop_uid
