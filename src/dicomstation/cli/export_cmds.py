"""``dicomstation segment`` and ``dicomstation export seg|sr|sc|derived|bundle``.

Every command reads its sources from the local database, writes new DICOM
records (SEG, TID 1500 SR, Secondary Capture, derived series, scene bundle)
back into it, prints the new UIDs, and with ``--send SERVER`` stores them on a
configured server through the generic node interface.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import highdicom as hd
import typer
from pydicom.dataset import Dataset
from rich.table import Table

from dicomstation.cli.common import (
    DbOption,
    JsonOption,
    console,
    handle_errors,
    open_database,
    print_json,
)
from dicomstation.database import Database
from dicomstation.errors import ConfigError
from dicomstation.export import (
    ExportOptions,
    Overlay,
    Scene,
    SceneVolume,
    ViewSettings,
    build_bundle,
    build_derived_series,
    build_parametric_map,
    build_sc,
    build_sr,
    read_png,
    read_seg_masks,
    render_mip,
    render_slice,
)
from dicomstation.export.seg import PALETTE, build_seg_from_labelmap
from dicomstation.export.terms import term
from dicomstation.export.workflow import (
    Exported,
    SegmentRequest,
    derive,
    export_and_import,
    labelmap_from_file,
    scene_segmentation,
    seg_source,
    seg_statistics,
    segment_infos,
    segment_series,
    send_instances,
    source_from_db,
)
from dicomstation.processing import (
    Seed,
    SegmentStatistics,
)

export_app = typer.Typer(help="Export results as new DICOM records.", no_args_is_help=True)

Description = Annotated[str | None, typer.Option("--description", help="Series description.")]
SeriesNumber = Annotated[int | None, typer.Option("--series-number", help="Series number.")]
Institution = Annotated[str | None, typer.Option("--institution", help="Institution name.")]
Department = Annotated[str | None, typer.Option("--department", help="Department name.")]
Send = Annotated[
    str | None, typer.Option("--send", help="Also store the result on this configured server.")
]


def _options(
    description: str | None, number: int | None, institution: str | None, department: str | None
) -> ExportOptions:
    return ExportOptions(
        series_description=description,
        series_number=number,
        institution_name=institution,
        institutional_department_name=department,
    )


def _floats(text: str, count: int, what: str) -> tuple[float, ...]:
    parts = text.replace(",", " ").split()
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != count:
        raise ConfigError(f"{what} must be {count} numbers separated by commas, got {text!r}")
    return values


def _color(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    red, green, blue = (int(v) for v in _floats(text, 3, "--color"))
    return red, green, blue


def _finish(db: Database, results: list[Exported], send: str | None, as_json: bool) -> None:
    """Print what was exported (and send it when asked)."""
    sent = {}
    if send:
        from dicomstation.nodes import open_node
        from dicomstation.settings import Settings

        settings = Settings.load()
        node = open_node(settings.server(send), local=settings.local)
        try:
            for result in results:
                report = send_instances(db, node, result.sop_uids)
                sent[result.series_uid] = len(report.succeeded)
        finally:
            node.close()
    if as_json:
        print_json([_as_dict(r, sent.get(r.series_uid)) for r in results])
        return
    for result in results:
        note = f", sent {sent[result.series_uid]} to {send}" if send else ""
        console.print(
            f"{result.kind}: series {result.series_uid} ({len(result.sop_uids)} instance(s){note})"
        )
        if result.statistics:
            console.print(_stats_table(result.statistics))


def _as_dict(result: Exported, sent: int | None) -> dict[str, object]:
    return {
        "kind": result.kind,
        "series_uid": result.series_uid,
        "sop_uids": list(result.sop_uids),
        "sent": sent,
        "statistics": [s.__dict__ for s in result.statistics],
    }


def _stats_table(stats: tuple[SegmentStatistics, ...]) -> Table:
    table = Table()
    for title in ("#", "Segment", "Voxels", "Volume (mL)", "Mean", "Min", "Max", "Std"):
        table.add_column(title, justify="right")
    for s in stats:
        numbers = (s.volume_ml, s.mean, s.minimum, s.maximum, s.std)
        table.add_row(
            str(s.segment_number),
            s.label,
            str(s.voxel_count),
            *(f"{v:.3f}" if i == 0 else f"{v:.1f}" for i, v in enumerate(numbers)),
        )
    return table


def segment_cmd(
    series_uid: Annotated[str, typer.Argument(help="Series Instance UID in the local database.")],
    threshold: Annotated[tuple[float, float], typer.Option("--threshold", help="LO HI")],
    seed: Annotated[
        list[str] | None,
        typer.Option("--seed", help="Seed voxel x,y,z (column,row,slice); repeatable."),
    ] = None,
    seed_mm: Annotated[
        list[str] | None, typer.Option("--seed-mm", help="Seed at LPS mm x,y,z; repeatable.")
    ] = None,
    largest: Annotated[bool, typer.Option("--largest", help="Keep the largest island.")] = False,
    fill_holes: Annotated[bool, typer.Option("--fill-holes", help="Fill holes.")] = False,
    smooth: Annotated[float | None, typer.Option("--smooth", help="Smoothing sigma (mm).")] = None,
    label: Annotated[str, typer.Option("--label", help="Segment label.")] = "Segment",
    term_name: Annotated[
        str, typer.Option("--term", help="tissue, bone, liver, lesion...")
    ] = "tissue",
    color: Annotated[str | None, typer.Option("--color", help="R,G,B (0-255).")] = None,
    description: Description = None,
    series_number: SeriesNumber = None,
    institution: Institution = None,
    department: Department = None,
    send: Send = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Threshold-segment a series; store a DICOM SEG and a TID 1500 statistics SR."""
    seeds = [Seed.parse(s) for s in seed or []] + [
        Seed.parse(s, patient=True) for s in seed_mm or []
    ]
    request = SegmentRequest(
        low=threshold[0],
        high=threshold[1],
        seeds=tuple(seeds),
        largest=largest,
        fill_holes=fill_holes,
        smooth_mm=smooth,
        label=label,
        term=term(term_name),
        color=_color(color),
    )
    options = _options(description, series_number, institution, department)
    with open_database(db) as database:
        results = list(segment_series(database, series_uid, request, options))
        _finish(database, results, send, as_json)


@export_app.command("seg")
@handle_errors
def export_seg(
    series_uid: Annotated[str, typer.Argument(help="The segmented series (database UID).")],
    labelmap: Annotated[Path, typer.Option("--labelmap", help="NIfTI or NRRD label map.")],
    names: Annotated[
        list[str] | None,
        typer.Option("--segment", help="N=Label[:term], e.g. 1=Liver:liver; repeatable."),
    ] = None,
    description: Description = None,
    series_number: SeriesNumber = None,
    institution: Institution = None,
    department: Department = None,
    send: Send = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Export a label map file (on the series' grid) as a DICOM SEG."""
    named = {}
    for item in names or []:
        key, _, rest = item.partition("=")
        label, _, term_name = rest.partition(":")
        if not key.strip().isdigit():
            raise ConfigError(f"--segment {item!r}: expected N=Label[:term]")
        named[int(key)] = (label or f"Segment {key}", term(term_name or "tissue"))
    with open_database(db) as database:
        source = source_from_db(database, series_uid)
        labels = labelmap_from_file(labelmap, source.volume)
        options = _options(description, series_number, institution, department)
        seg = build_seg_from_labelmap(source, labels, segment_infos(labels, named), options)
        _finish(database, [export_and_import(database, "seg", [seg])], send, as_json)


@export_app.command("sr")
@handle_errors
def export_sr(
    seg_uid: Annotated[str, typer.Argument(help="SOP Instance UID of a SEG in the database.")],
    description: Description = None,
    series_number: SeriesNumber = None,
    institution: Institution = None,
    department: Department = None,
    send: Send = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compute statistics of a SEG's segments; store them as a TID 1500 SR."""
    with open_database(db) as database:
        seg, source, stats = seg_statistics(database, seg_uid)
        options = _options(description, series_number, institution, department)
        sr = build_sr(hd.seg.Segmentation.from_dataset(seg), source, stats, options)
        done = export_and_import(database, "sr", [sr])
        _finish(database, [Exported("sr", done.series_uid, done.sop_uids, stats)], send, as_json)


@export_app.command("sc")
@handle_errors
def export_sc(
    series_uid: Annotated[str, typer.Argument(help="Series the screenshot belongs to.")],
    png: Annotated[Path | None, typer.Option("--png", help="Store this picture.")] = None,
    mip: Annotated[bool, typer.Option("--mip", help="Maximum intensity projection.")] = False,
    index: Annotated[int | None, typer.Option("--slice", help="Slice index.")] = None,
    axis: Annotated[int, typer.Option("--axis", help="0 slices, 1 rows, 2 columns.")] = 0,
    window: Annotated[str | None, typer.Option("--window", help="CENTER,WIDTH")] = None,
    seg_uid: Annotated[str | None, typer.Option("--seg", help="Draw this SEG over it.")] = None,
    description: Description = None,
    series_number: SeriesNumber = None,
    institution: Institution = None,
    department: Department = None,
    send: Send = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Store a rendered slice, a MIP, or a PNG as a Secondary Capture."""
    win = _window(window)
    with open_database(db) as database:
        source = source_from_db(database, series_uid)
        if png is not None:
            rendering = read_png(png)
        elif mip:
            rendering = render_mip(source.volume, axis=axis, window=win)
        else:
            overlays = _overlays(database, seg_uid, source.volume) if seg_uid else []
            rendering = render_slice(source.volume, index, axis=axis, window=win, overlays=overlays)
        options = _options(description, series_number, institution, department)
        sc = build_sc(rendering, source, options)
        _finish(database, [export_and_import(database, "sc", [sc])], send, as_json)


def _window(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    center, width = _floats(text, 2, "--window")
    return center, width


def _overlays(database: Database, seg_uid: str, reference: hd.Volume) -> list[Overlay]:
    seg, _ = seg_source(database, seg_uid)
    masks = read_seg_masks(seg, reference)
    return [Overlay(m, PALETTE[(n - 1) % len(PALETTE)]) for n, m in masks.items()]


@export_app.command("derived")
@handle_errors
def export_derived(
    series_uid: Annotated[str, typer.Argument(help="Source series (database UID).")],
    smooth: Annotated[float | None, typer.Option("--smooth", help="Gaussian sigma (mm).")] = None,
    median: Annotated[int | None, typer.Option("--median", help="Median window (voxels).")] = None,
    spacing: Annotated[
        str | None, typer.Option("--resample", help="New spacing slice,row,column (mm).")
    ] = None,
    parametric_map: Annotated[
        bool,
        typer.Option(
            "--parametric-map", help="One Parametric Map object (float values; any source)."
        ),
    ] = False,
    description: Description = None,
    series_number: SeriesNumber = None,
    institution: Institution = None,
    department: Department = None,
    send: Send = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Process a series (smooth, median, resample) and store it as a derived series."""
    new = _floats(spacing, 3, "--resample") if spacing is not None else None
    with open_database(db) as database:
        source = source_from_db(database, series_uid)
        result = derive(source.volume, smooth_mm=smooth, median=median, spacing=new)
        options = _options(description, series_number, institution, department)
        build = build_parametric_map if parametric_map else build_derived_series
        made = build(
            source, result.volume, options, derivation=result.code, description=result.description
        )
        images = [made] if isinstance(made, Dataset) else made
        _finish(database, [export_and_import(database, "derived", images)], send, as_json)


@export_app.command("bundle")
@handle_errors
def export_bundle(
    series_uids: Annotated[
        list[str], typer.Argument(help="Series to include (first: background).")
    ],
    seg_uids: Annotated[list[str] | None, typer.Option("--seg", help="SEG to include.")] = None,
    window: Annotated[str | None, typer.Option("--window", help="CENTER,WIDTH")] = None,
    index: Annotated[int | None, typer.Option("--slice", help="Slice shown.")] = None,
    layout: Annotated[str, typer.Option("--layout", help="View layout.")] = "axial",
    description: Description = None,
    series_number: SeriesNumber = None,
    institution: Institution = None,
    department: Department = None,
    send: Send = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pack volumes, segmentations and view settings into one scene-bundle record."""
    with open_database(db) as database:
        sources = [source_from_db(database, uid) for uid in series_uids]
        volumes = tuple(
            SceneVolume(
                f"{n}: {s.first.get('SeriesDescription') or 'Volume'}", s.volume, s.series_uid
            )
            for n, s in enumerate(sources, start=1)
        )
        segmentations = tuple(scene_segmentation(database, uid) for uid in seg_uids or [])
        view = ViewSettings(
            layout=layout, background=volumes[0].name, window=_window(window), slice_index=index
        )
        options = _options(description, series_number, institution, department)
        bundle = build_bundle(Scene(volumes, segmentations, view), sources[0], options)
        _finish(database, [export_and_import(database, "bundle", [bundle])], send, as_json)


def register(app: typer.Typer) -> None:
    """Add ``segment`` and the ``export`` group to the app."""
    # highdicom warns about single-component patient names copied from real sources;
    # that is the source's business, not something the user of an export can act on.
    warnings.filterwarnings(
        "ignore", message=r"The string .* person name", category=UserWarning, module="highdicom"
    )
    app.command("segment")(handle_errors(segment_cmd))
    app.add_typer(export_app, name="export")
