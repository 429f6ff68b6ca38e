"""What the ``segment`` and ``export`` commands share: options, quiet highdicom, output.

:func:`finish` prints what an export made (a table of segment statistics, or JSON)
and with ``--send`` stores it on a configured server; :func:`check_server` refuses
an unknown ``--send`` server before any work.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from dicomstation.cli.common import console, print_json
from dicomstation.errors import ConfigError

if TYPE_CHECKING:  # the pipeline, export and processing are imported when a command runs
    from rich.table import Table

    from dicomstation.database import Database
    from dicomstation.export import ExportOptions
    from dicomstation.pipeline import Exported, ExportInput
    from dicomstation.processing import SegmentStatistics

__all__ = [
    "check_server",
    "export_kinds",
    "export_options",
    "finish",
    "parse_color",
    "parse_floats",
    "quiet_highdicom",
]


def export_options(
    description: str | None, number: int | None, institution: str | None, department: str | None
) -> ExportOptions:
    """The export options of the commands' --description, --series-number... options."""
    from dicomstation.export import ExportOptions

    return ExportOptions(
        series_description=description,
        series_number=number,
        institution_name=institution,
        institutional_department_name=department,
    )


def parse_floats(text: str, count: int, what: str) -> tuple[float, ...]:
    """``count`` numbers from ``text`` ("1,2,3"); ConfigError naming option ``what`` else."""
    parts = text.replace(",", " ").split()
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != count:
        raise ConfigError(f"{what} must be {count} numbers separated by commas, got {text!r}")
    return values


def parse_color(text: str | None) -> tuple[int, int, int] | None:
    """An R,G,B --color value (None: not given)."""
    if text is None:
        return None
    red, green, blue = (int(v) for v in parse_floats(text, 3, "--color"))
    return red, green, blue


# highdicom warns about single-component patient names copied from real sources and
# about its own deprecations: nothing the user of an export can act on. Caught in our
# call only (warnings.catch_warnings), never with a process-wide filter.
_QUIET = (
    r"The string .* person name",
    r"Arguments 'window_center' and 'window_width' are deprecated",
)


@contextmanager
def quiet_highdicom() -> Iterator[None]:
    """Ignore highdicom's warnings in :data:`_QUIET` inside the block only."""
    with warnings.catch_warnings():
        for message in _QUIET:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        yield


def export_kinds(db: Database, request: ExportInput, kinds: list[str], seed: str) -> list[Exported]:
    """Export ``request`` as each of ``kinds`` (UIDs derived from ``seed``)."""
    from dicomstation.pipeline import export_results

    with quiet_highdicom():
        return export_results(db, request, kinds, uid_seed=seed)


def check_server(send: str | None) -> None:
    """ConfigError naming ``send`` when it is not a configured server."""
    if send:
        from dicomstation.settings import Settings

        Settings.load().server(send)


def finish(db: Database, results: list[Exported], send: str | None, as_json: bool) -> None:
    """Print what was exported (and send it when asked)."""
    sent = {}
    if send:
        from dicomstation.nodes import open_node
        from dicomstation.pipeline.actions import files_of, send_files
        from dicomstation.settings import Settings

        settings = Settings.load()
        node = open_node(settings.server(send), local=settings.local)
        try:
            for result in results:
                report = send_files(node, files_of(db, list(result.sop_uids)))
                sent[result.series_uid] = len(report.succeeded) + len(report.skipped)
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
    from rich.table import Table

    table = Table()
    planar = any(s.area_mm2 is not None for s in stats)  # a projection image
    size = "Area (mm²)" if planar else "Volume (mL)"
    for title in ("#", "Segment", "Voxels", size, "Mean", "Min", "Max", "Std"):
        table.add_column(title, justify="right")
    for s in stats:
        extent = s.area_mm2 if planar and s.area_mm2 is not None else s.volume_ml
        numbers = (extent, s.mean, s.minimum, s.maximum, s.std)
        table.add_row(
            str(s.segment_number),
            s.label,
            str(s.voxel_count),
            *(f"{v:.3f}" if i == 0 else f"{v:.1f}" for i, v in enumerate(numbers)),
        )
    return table
