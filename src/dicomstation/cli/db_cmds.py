"""``dicomstation db ...``: import, list, show and delete in the local database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dicomstation.cli.common import (
    DbOption,
    ExitCode,
    JsonOption,
    UsageError,
    console,
    err_console,
    exit_for,
    handle_errors,
    open_database,
    parse_level,
    print_json,
    print_refs,
    progress_bar,
)
from dicomstation.models import Level, Query, TransferReport

db_app = typer.Typer(help="The local DICOM database.", no_args_is_help=True)


@db_app.command("import")
@handle_errors
def db_import(
    paths: Annotated[
        list[Path], typer.Argument(help="Files, folders (recursive) and zip archives.")
    ],
    db: DbOption = None,
    no_copy: Annotated[bool, typer.Option("--no-copy", help="Index files where they are.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Import DICOM files; non-DICOM and truncated files are reported and skipped.

    Exit code 1 when some files were not imported, 3 when none was (a folder of
    junk), 2 when a path does not exist.
    """
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    with open_database(db) as database, progress_bar("import") as progress:
        report = database.import_path(paths, copy=not no_copy, progress=progress)
    if as_json:
        print_json(
            {
                "imported": len(report.succeeded),
                "skipped": len(report.skipped),
                "failed": dict(report.failed),
                "notes": dict(report.warnings),
                "seconds": report.seconds,
            }
        )
        _exit_for_import(report)
        return
    for reason in report.failed.values():
        err_console.print(f"[yellow]skipped[/] {reason}")
    for reason in report.warnings.values():  # not instances, not failures (a DICOMDIR)
        err_console.print(f"[dim]note[/] {reason}")
    rate = len(report.succeeded) / report.seconds if report.seconds else 0.0
    console.print(
        f"imported {len(report.succeeded)}, already present {len(report.skipped)}, "
        f"not imported {len(report.failed)} ({report.seconds:.1f}s, {rate:.0f} files/s)"
    )
    _exit_for_import(report)


def _exit_for_import(report: TransferReport) -> None:
    """As :func:`exit_for`; nothing imported but notes (a lone DICOMDIR) is nothing done."""
    if report.warnings and not (report.succeeded or report.skipped or report.failed):
        raise typer.Exit(int(ExitCode.NOTHING_DONE))
    exit_for(report)


@db_app.command("ls")
@handle_errors
def db_ls(
    level: Annotated[str, typer.Option(help="study, series or instance (or patient).")] = "study",
    patient_name: Annotated[str, typer.Option("--PatientName")] = "",
    patient_id: Annotated[str, typer.Option("--PatientID")] = "",
    study_date: Annotated[str, typer.Option("--StudyDate", help="e.g. 20200101-20201231")] = "",
    modality: Annotated[str, typer.Option("--Modality")] = "",
    study: Annotated[str, typer.Option("--study", help="Study UID (series/instance level).")] = "",
    series: Annotated[str, typer.Option("--series", help="Series UID (instance level).")] = "",
    filters: Annotated[
        list[str] | None, typer.Option("--filter", help="KEY=VALUE, repeatable.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many results.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List studies, series or instances, with DICOM matching (wildcards, ranges, UID lists)."""
    parsed = parse_level(level)
    keys = {"PatientName": patient_name, "PatientID": patient_id, "StudyDate": study_date}
    keys["ModalitiesInStudy" if parsed is Level.STUDY else "Modality"] = modality
    for item in filters or []:
        key, _, value = item.partition("=")
        keys[key.strip()] = value
    query = Query(
        parsed,
        {k: v for k, v in keys.items() if v},
        study_uid=study or None,
        series_uid=series or None,
        limit=limit,
    )
    with open_database(db) as database:
        print_refs(database.find(query), as_json)


@db_app.command("show")
@handle_errors
def db_show(uid: str, db: DbOption = None) -> None:
    """Show the cached DICOM JSON header(s) of a study, series or instance."""
    with open_database(db) as database:
        headers = database.headers_of(uid)
    print_json(headers)


@db_app.command("rm")
@handle_errors
def db_rm(uids: list[str], db: DbOption = None) -> None:
    """Delete studies, series or instances (rows and the files the database owns)."""
    with open_database(db) as database:
        for uid in uids:
            count = database.delete(uid)
            console.print(f"deleted {uid} ({count} instances)")


def register(app: typer.Typer) -> None:
    """Add the ``db`` group."""
    app.add_typer(db_app, name="db")
