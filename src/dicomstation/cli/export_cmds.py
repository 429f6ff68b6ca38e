"""``dicomstation segment`` and ``dicomstation export seg|sr|sc|derived|bundle``.

Every command reads its sources from the local database, writes new DICOM
records (SEG, TID 1500 SR, Secondary Capture, derived series, scene bundle)
back into it, prints the new UIDs, and with ``--send SERVER`` stores them on a
configured server through the generic node interface.

All of it goes through :mod:`dicomstation.pipeline`: ``segment`` and ``export seg``
are one-item pipelines (load, segment, export), the other exports call
:func:`~dicomstation.pipeline.export_results`, the same function the pipeline's
export step uses. Series numbers never collide within the study, and UIDs derive
from the inputs, so running the same command twice does not make a second record.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dicomstation.cli.common import (
    DbOption,
    JsonOption,
    handle_errors,
    open_database,
    printed_warnings,
)
from dicomstation.cli.export_support import (
    check_server,
    export_kinds,
    export_options,
    finish,
    parse_color,
    parse_floats,
    quiet_highdicom,
)
from dicomstation.cli.uids import seg_instance_uid
from dicomstation.errors import ConfigError, NotFoundError

if TYPE_CHECKING:  # the pipeline, export and processing are imported when a command runs
    from dicomstation.database import Database
    from dicomstation.pipeline import Exported

export_app = typer.Typer(help="Export results as new DICOM records.", no_args_is_help=True)

Description = Annotated[str | None, typer.Option("--description", help="Series description.")]
SeriesNumber = Annotated[int | None, typer.Option("--series-number", help="Series number.")]
Institution = Annotated[str | None, typer.Option("--institution", help="Institution name.")]
Department = Annotated[str | None, typer.Option("--department", help="Department name.")]
Send = Annotated[
    str | None, typer.Option("--send", help="Also store the result on this configured server.")
]


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
    params: dict[str, object] = {  # parsed here: processing (scipy) is imported by the step
        "threshold": [threshold[0], threshold[1]],
        "seeds": [list(parse_floats(s, 3, "--seed")) for s in seed or []],
        "seeds_mm": [list(parse_floats(s, 3, "--seed-mm")) for s in seed_mm or []],
        "largest": largest,
        "fill_holes": fill_holes,
        "smooth_mm": smooth or 0,
        "label": label,
        "term": term_name,
        "color": list(parse_color(color) or ()),
    }
    tags = (description, series_number, institution, department)
    check_server(send)  # before any work: an unknown --send server is a usage error
    with open_database(db) as database:
        results = _segment_and_export(
            database, series_uid, "threshold", params, ("seg", "sr"), tags
        )
        finish(database, results, send, as_json)


def _study_of(db: Database, series_uid: str) -> str:
    headers = db.headers_of(series_uid)
    if not headers:
        raise NotFoundError(f"series {series_uid} is not in the local database {db.root}")
    from dicomstation.dicomjson import first_value

    return first_value(headers[0], "StudyInstanceUID")


def _segment_and_export(
    db: Database,
    series_uid: str,
    segmenter: str,
    params: dict[str, object],
    kinds: tuple[str, ...],
    tags: tuple[str | None, int | None, str | None, str | None],
) -> list[Exported]:
    """A one-item pipeline: load the series, segment it, export; the new records (``tags``:
    the arguments of :func:`export_options`, made after the series is found)."""
    item_study = _study_of(db, series_uid)  # NotFoundError before highdicom and the steps
    options = export_options(*tags)
    from dicomstation.pipeline import (
        ExportStep,
        ItemsSource,
        LoadStep,
        Pipeline,
        SegmentStep,
        WorkItem,
    )
    from dicomstation.pipeline.actions import run_now

    item = WorkItem(item_study, (series_uid,))
    steps = (
        LoadStep("load"),
        SegmentStep("segment", segmenter, params),
        ExportStep("export", kinds, options),
    )
    pipeline = Pipeline(f"{segmenter} {series_uid}", ItemsSource((item,)), steps)
    with printed_warnings(), quiet_highdicom():
        (ctx,) = run_now(pipeline, db)
    return ctx.exported


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
    from dicomstation.pipeline.actions import content_seed

    segments: dict[str, dict[str, str]] = {}
    for item in names or []:
        key, _, rest = item.partition("=")
        label, _, term_name = rest.partition(":")
        if not key.strip().isdigit():
            raise ConfigError(f"--segment {item!r}: expected N=Label[:term]")
        segments[key.strip()] = {"label": label or f"Segment {key}", "term": term_name or "tissue"}
    digest = content_seed(labelmap.read_bytes()) if labelmap.is_file() else ""
    params: dict[str, object] = {"path": str(labelmap.resolve()), "segments": segments}
    params["sha256"] = digest
    tags = (description, series_number, institution, department)
    with open_database(db) as database:
        results = _segment_and_export(database, series_uid, "labelmap", params, ("seg",), tags)
        finish(database, results, send, as_json)


@export_app.command("sr")
@handle_errors
def export_sr(
    seg_uid: Annotated[
        str, typer.Argument(help="A SEG of the database: its series UID or its instance UID.")
    ],
    description: Description = None,
    series_number: SeriesNumber = None,
    institution: Institution = None,
    department: Department = None,
    send: Send = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compute statistics of a SEG's segments; store them as a TID 1500 SR."""
    from dicomstation.pipeline import ExportInput
    from dicomstation.pipeline.actions import content_seed
    from dicomstation.pipeline.inputs import read_seg

    options = export_options(description, series_number, institution, department)
    with open_database(db) as database:
        seg_uid = seg_instance_uid(database, seg_uid)
        seg, source, segmentation = read_seg(database, seg_uid)
        request = ExportInput(source, options, segmentation, built={"seg": (seg,)})
        seed = content_seed("sr", seg_uid, options)
        finish(database, export_kinds(database, request, ["sr"], seed), send, as_json)


@export_app.command("sc")
@handle_errors
def export_sc(
    series_uid: Annotated[str, typer.Argument(help="Series the screenshot belongs to.")],
    png: Annotated[Path | None, typer.Option("--png", help="Store this picture.")] = None,
    mip: Annotated[bool, typer.Option("--mip", help="Maximum intensity projection.")] = False,
    index: Annotated[int | None, typer.Option("--slice", help="Slice index.")] = None,
    axis: Annotated[int, typer.Option("--axis", help="0 slices, 1 rows, 2 columns.")] = 0,
    window: Annotated[str | None, typer.Option("--window", help="CENTER,WIDTH")] = None,
    seg_uid: Annotated[
        str | None, typer.Option("--seg", help="Draw this SEG (series or instance UID) over it.")
    ] = None,
    description: Description = None,
    series_number: SeriesNumber = None,
    institution: Institution = None,
    department: Department = None,
    send: Send = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Store a rendered slice, a MIP, or a PNG as a Secondary Capture."""
    from dicomstation.pipeline import ExportInput
    from dicomstation.pipeline.actions import content_seed
    from dicomstation.pipeline.inputs import read_seg, series_source

    params: dict[str, object] = {
        "mip": mip,
        "index": index,
        "axis": axis,
        "window": _window(window),
    }
    if png is not None:
        params.update(
            png=str(png), png_sha256=content_seed(png.read_bytes()) if png.is_file() else ""
        )
    options = export_options(description, series_number, institution, department)
    with open_database(db) as database:
        source = series_source(database, series_uid)
        seg_uid = seg_instance_uid(database, seg_uid, "--seg") if seg_uid else None
        segmentation = (
            read_seg(database, seg_uid)[2] if seg_uid and png is None and not mip else None
        )
        request = ExportInput(source, options, segmentation, params)
        seed = content_seed("sc", series_uid, seg_uid, options, params)
        finish(database, export_kinds(database, request, ["sc"], seed), send, as_json)


def _window(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    center, width = parse_floats(text, 2, "--window")
    return center, width


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
    from dicomstation.pipeline import ExportInput
    from dicomstation.pipeline.actions import content_seed
    from dicomstation.pipeline.inputs import series_source

    new = parse_floats(spacing, 3, "--resample") if spacing is not None else None
    params = {"smooth_mm": smooth, "median": median, "spacing": new}
    kind = "pm" if parametric_map else "derived"
    options = export_options(description, series_number, institution, department)
    with open_database(db) as database:
        request = ExportInput(series_source(database, series_uid), options, params=params)
        seed = content_seed(kind, series_uid, options, params)
        finish(database, export_kinds(database, request, [kind], seed), send, as_json)


@export_app.command("bundle")
@handle_errors
def export_bundle(
    series_uids: Annotated[
        list[str], typer.Argument(help="Series to include (first: background).")
    ],
    seg_uids: Annotated[
        list[str] | None, typer.Option("--seg", help="SEG to include (series or instance UID).")
    ] = None,
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
    from dicomstation.pipeline import ExportInput
    from dicomstation.pipeline.actions import content_seed
    from dicomstation.pipeline.inputs import scene_segmentation, series_source

    params = {"window": _window(window), "index": index, "layout": layout}
    options = export_options(description, series_number, institution, department)
    with open_database(db) as database:
        sources = [series_source(database, uid) for uid in series_uids]
        seg_uids = [seg_instance_uid(database, uid, "--seg") for uid in seg_uids or []]
        scenes = tuple(scene_segmentation(database, uid) for uid in seg_uids)
        request = ExportInput(
            sources[0],
            options,
            params=params,
            volumes=tuple(sources[1:]),
            scene_segmentations=scenes,
        )
        seed = content_seed("bundle", series_uids, seg_uids, options, params)
        finish(database, export_kinds(database, request, ["bundle"], seed), send, as_json)


def register(app: typer.Typer) -> None:
    """Add ``segment`` and the ``export`` group to the app."""
    app.command("segment")(handle_errors(segment_cmd))
    app.add_typer(export_app, name="export")
