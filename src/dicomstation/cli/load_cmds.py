"""``dicomstation load``: a series (database UID, folder or file) -> volume -> NIfTI/NRRD."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dicomstation.cli.common import (
    DbOption,
    JsonOption,
    UsageError,
    console,
    err_console,
    handle_errors,
    open_database,
    print_json,
)
from dicomstation.errors import ConfigError, GeometryWarning, LoadError

_UID = re.compile(r"[0-9]+(\.[0-9]+)*")

if TYPE_CHECKING:  # imported when the command runs: ``load --help`` stays light
    from rich.table import Table

    from dicomstation.volumes import Loadable
    from dicomstation.volumes.convert import Converted


def _files_of(target: str, db_path: Path | None) -> list[Path]:
    """Files named by ``target``: an existing file/folder, else a series UID in the database."""
    path = Path(target)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        if not files:
            raise LoadError(f"{path}: folder holds no files")
        return files
    if not _UID.fullmatch(target):  # not a UID: a path that is not there (no database opened)
        raise UsageError(f"no such file or folder: {target}")
    db = open_database(db_path)
    try:
        return db.series_files(target)
    finally:
        db.close()


def _loadables_table(loadables: list[Loadable]) -> Table:
    from rich.table import Table

    table = Table()
    for title in ("#", "Name", "Kind", "Frames", "Confidence", "Reason", "Warnings"):
        table.add_column(title, overflow="fold")
    for i, ld in enumerate(loadables):
        table.add_row(
            str(i),
            ld.name,
            ld.kind.value,
            str(len(ld.frames)),
            f"{ld.confidence:.2f}",
            ld.reason,
            "; ".join(ld.warnings),
        )
    return table


def _summary(result: Converted) -> dict[str, object]:
    """What the command prints; ``scl_slope_inter`` (of the file) only when one was written."""
    fields, affine = result.fields, result.affine
    spacing = [float(v) for v in (affine[:3, :3] ** 2).sum(axis=0) ** 0.5]
    summary: dict[str, object] = {
        "name": fields["name"],
        "kind": fields["kind"].value,
        "series_instance_uid": fields["series_instance_uid"],
        "shape": list(result.shape[1:]),
        "time_points": result.shape[0],
        "dtype": str(result.dtype),
    }
    if result.path is not None:
        summary["scl_slope_inter"] = list(result.scaling)
    summary |= {
        "spacing": [round(s, 6) for s in spacing],
        "origin_lps": [round(float(p), 6) for p in affine[:3, 3]],
        "warnings": list(fields["warnings"]),
        "output": str(result.path) if result.path else None,
    }
    return summary


def register(app: typer.Typer) -> None:
    """Add ``load`` to the app."""

    @app.command("load")
    @handle_errors
    def load_cmd(
        target: Annotated[str, typer.Argument(help="Series UID in the local database, or a path.")],
        to: Annotated[
            Path | None, typer.Option("--to", help="Write .nii, .nii.gz or .nrrd.")
        ] = None,
        index: Annotated[int, typer.Option("--index", help="Which loadable (see --list).")] = 0,
        list_only: Annotated[bool, typer.Option("--list", help="Only list loadables.")] = False,
        correct_tilt: Annotated[
            bool, typer.Option("--correct-tilt", help="Resample gantry-tilted slices.")
        ] = False,
        equidistant: Annotated[
            bool,
            typer.Option(
                "--equidistant",
                help="Resample unevenly spaced slices (missing slices) onto equidistant ones "
                "(linear). Default: slices kept as stored, with a warning.",
            ),
        ] = False,
        apply_rescale: Annotated[
            bool,
            typer.Option(
                "--apply-rescale",
                help="NIfTI: write the rescaled values (float32 for a non-integer slope). "
                "Default: the stored integers with Rescale Slope/Intercept in scl_slope/"
                "scl_inter (as dcm2niix) when those hold it exactly, else the rescaled values.",
            ),
        ] = False,
        db: DbOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Load a series as a volume (Slicer-style loadables) and optionally write it out."""
        # convert (or decode_stack without --to): what load + write_volume do, without the
        # highdicom Volumes nobody looks at here (highdicom costs ~0.5 s to import); a plain
        # series goes from its files' pixel bytes to the NIfTI without an array.
        files = _files_of(target, db)
        from dicomstation.volumes import decode_stack, examine
        from dicomstation.volumes.convert import Converted, convert

        loadables = examine(files)
        if list_only:
            console.print(_loadables_table(loadables))
            return
        if not 0 <= index < len(loadables):
            raise ConfigError(f"--index {index}: there are {len(loadables)} loadable(s)")
        chosen = loadables[index]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GeometryWarning)  # printed below from .warnings
            if to is None:
                stack = decode_stack(chosen, correct_tilt=correct_tilt, equidistant=equidistant)
                result = Converted.of(stack, None)
            else:
                result = convert(
                    chosen,
                    to,
                    correct_tilt=correct_tilt,
                    equidistant=equidistant,
                    apply_rescale=apply_rescale,
                )
        summary = _summary(result)
        if as_json:
            print_json(summary)
            return
        if result.fields["warnings"]:
            from rich.text import Text

            for message in result.fields["warnings"]:
                err_console.print(Text(f"warning: {message}", style="yellow"))
        for key, value in summary.items():
            if key != "warnings":
                typer.echo(f"{key}: {value}")
