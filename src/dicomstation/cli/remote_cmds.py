"""``dicomstation query | metadata | fetch | send``: talk to configured remote servers.

Protocol-neutral: every command opens the server with
:func:`dicomstation.nodes.open_node`, so DICOMweb and DIMSE servers work alike.
``fetch`` and ``send`` do what the pipeline's fetch and send steps do
(:mod:`dicomstation.pipeline.actions`); ``dicomstation run`` chains them for cohorts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
    printed_warnings,
    progress_bar,
)
from dicomstation.dicomjson import first_value
from dicomstation.errors import ConfigError
from dicomstation.models import Level, Query

if TYPE_CHECKING:  # nodes (httpx, pynetdicom), pipeline, deid: imported when a command runs
    from rich.table import Table

    from dicomstation.deid.config import DeidConfig
    from dicomstation.models import TransferReport
    from dicomstation.nodes import DicomNode

__all__ = ["register"]

_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
ServerArg = Annotated[str, typer.Argument(help="A server name from `dicomstation server list`.")]
ConcurrencyOption = Annotated[
    int, typer.Option("--concurrency", min=1, max=16, help="Series/batches in flight at once.")
]


@contextmanager
def _node(name: str, concurrency: int | None = None) -> Iterator[DicomNode]:
    from dicomstation.nodes import open_node
    from dicomstation.settings import Settings

    settings = Settings.load()
    node = open_node(settings.server(name), local=settings.local)
    if concurrency is not None and hasattr(node, "concurrency"):
        node.concurrency = concurrency
    try:
        with printed_warnings():
            yield node
    finally:
        node.close()


def _filters(pairs: list[str], named: dict[str, str], level: Level) -> dict[str, str]:
    filters = {k: v for k, v in named.items() if v}
    if "Modality" in filters and level is Level.STUDY:
        filters["ModalitiesInStudy"] = filters.pop("Modality")
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--filter {pair!r}: expected KEY=VALUE (e.g. StudyDate=2024-)")
        filters[key.strip()] = value.strip()
    return filters


ServersArg = Annotated[
    list[str] | None,
    typer.Argument(help="Server names (several: a federated query; none: the default server)."),
]
AllOption = Annotated[
    bool, typer.Option("--all", help="Query every configured server; merge rows by UID.")
]


@handle_errors
def query(
    servers: ServersArg = None,
    all_servers: AllOption = False,
    level: Annotated[str, typer.Option(help="study, series or instance.")] = "study",
    patient_name: Annotated[str, typer.Option("--PatientName", help="DOE^J*")] = "",
    patient_id: Annotated[str, typer.Option("--PatientID")] = "",
    study_date: Annotated[str, typer.Option("--StudyDate", help="YYYYMMDD[-YYYYMMDD]")] = "",
    modality: Annotated[str, typer.Option("--Modality")] = "",
    accession: Annotated[str, typer.Option("--AccessionNumber")] = "",
    filters: Annotated[list[str] | None, typer.Option("--filter", help="KEY=VALUE")] = None,
    study: Annotated[str, typer.Option("--study", help="Study UID (series/instances).")] = "",
    series: Annotated[str, typer.Option("--series", help="Series UID (instances).")] = "",
    include: Annotated[
        list[str] | None, typer.Option("--include", help="Extra field or 'all'.")
    ] = None,
    fuzzy: Annotated[bool, typer.Option("--fuzzy", help="Fuzzy person-name matching.")] = False,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonOption = False,
) -> None:
    """Query a server for studies, series or instances (QIDO-RS or C-FIND).

    With several servers (or ``--all``) they are asked at once and the rows merged
    by UID, with the servers that hold each; an unreachable server is a warning.
    """
    parsed = parse_level(level)
    named = {
        "PatientName": patient_name,
        "PatientID": patient_id,
        "StudyDate": study_date,
        "Modality": modality,
        "AccessionNumber": accession,
    }
    q = Query(
        parsed,
        _filters(filters or [], named, parsed),
        study_uid=study or None,
        series_uid=series or None,
        include_fields=tuple(include or ()),
        fuzzy=fuzzy,
        limit=limit,
        offset=offset,
    )
    if all_servers or len(servers or ()) > 1:
        from dicomstation.cli.federated import federated_query

        federated_query(servers or [], all_servers, q, as_json)
        return
    with _node(_server_name(servers)) as node:
        refs = node.find(q)
    print_refs(refs, as_json)


def _server_name(servers: list[str] | None) -> str:
    from dicomstation.settings import Settings

    return servers[0] if servers else Settings.load().server_name(None)


def _number(header: Any, keyword: str) -> float:
    try:
        return float(first_value(header, keyword) or 0)
    except ValueError:
        return 0.0


def _position(header: Any) -> tuple[float, float]:
    return _number(header, "SeriesNumber"), _number(header, "InstanceNumber")


def _metadata_table(headers: list[Any]) -> Table:
    from rich.table import Table

    table = Table()
    for title in ("Series", "#", "Modality", "Rows x Cols", "Frames", "SOP instance UID"):
        table.add_column(title, overflow="fold")
    for header in sorted(headers, key=_position):
        size = f"{first_value(header, 'Rows')} x {first_value(header, 'Columns')}"
        table.add_row(
            first_value(header, "SeriesNumber"),
            first_value(header, "InstanceNumber"),
            first_value(header, "Modality"),
            size,
            first_value(header, "NumberOfFrames") or "1",
            first_value(header, "SOPInstanceUID"),
        )
    return table


@handle_errors
def metadata(
    server: ServerArg,
    study_uid: Annotated[str, typer.Argument(help="Study Instance UID.")],
    series: Annotated[str, typer.Option("--series", help="Only this series.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Show the headers of a remote study or series without fetching its images."""
    with _node(server) as node:
        headers = node.metadata(study_uid, series or None)
    if as_json:
        print_json([dict(h) for h in headers])
    else:
        console.print(_metadata_table(list(headers)))


def _summary(report: TransferReport, verb: str, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "succeeded": len(report.succeeded),
                "skipped": len(report.skipped),
                "failed": dict(report.failed),
                "warnings": dict(report.warnings),
                "bytes": report.bytes_transferred,
                "seconds": report.seconds,
            }
        )
    else:
        for uid, reason in list(report.failed.items())[:20]:
            err_console.print(f"[red]failed[/] {uid}: {reason}")
        if len(report.failed) > 20:
            err_console.print(f"... and {len(report.failed) - 20} more failures")
        for uid, message in report.warnings.items():
            err_console.print(f"[yellow]warning[/] {uid}: {message}")
        mb = report.bytes_transferred / 1e6
        rate = mb / report.seconds if report.seconds else 0.0
        console.print(
            f"{verb} {len(report.succeeded)}, skipped {len(report.skipped)}, "
            f"failed {len(report.failed)} ({mb:.1f} MB in {report.seconds:.1f}s, "
            f"{rate:.1f} MB/s)"
        )
    exit_for(report)


@handle_errors
def fetch(
    target: Annotated[
        str, typer.Argument(help="A server name (then the study UID), or the study UID alone.")
    ],
    study_uid: Annotated[
        str | None, typer.Argument(help="Study Instance UID (after a server name).")
    ] = None,
    from_any: Annotated[
        bool,
        typer.Option("--from-any", help="Fetch from the first configured server that has it."),
    ] = False,
    series: Annotated[list[str] | None, typer.Option("--series", help="Only these series.")] = None,
    instances: Annotated[
        list[str] | None, typer.Option("--instance", help="Only these SOPs.")
    ] = None,
    db: DbOption = None,
    concurrency: ConcurrencyOption = 4,
    as_json: JsonOption = False,
) -> None:
    """Fetch a study (or some series/instances) into the local database; resumable.

    Without a server (or with ``--from-any``) the configured servers are asked
    which hold the study; it is fetched from the first that has it (the default
    server first, then the settings' order).
    """
    if from_any or study_uid is None:
        if study_uid is not None:
            raise UsageError("--from-any takes the study UID alone (no server name)")
        from dicomstation.cli.federated import holder

        study_uid, server = target, holder(target)
    else:
        server = target
    from dicomstation.pipeline import WorkItem  # after the server is known (start-up)
    from dicomstation.pipeline.actions import fetch_item

    with (
        open_database(db) as database,
        _node(server, concurrency) as node,
        progress_bar(f"fetch {server}") as progress,
    ):
        item = WorkItem(study_uid, tuple(series or ()))
        report = fetch_item(node, database, item, instances or (), progress=progress)
    _summary(report, "fetched", as_json)


def _check_items(items: list[str]) -> None:
    """A path that does not exist is named as such (a UID is digits and dots)."""
    for item in items:
        if not _UID.fullmatch(item) and not Path(item).exists():
            raise UsageError(f"no such file or folder: {item}")


@handle_errors
def send(
    server: ServerArg,
    items: Annotated[
        list[str],
        typer.Argument(
            help="Study/series/instance UIDs of the local database, or files and folders."
        ),
    ],
    db: DbOption = None,
    concurrency: ConcurrencyOption = 4,
    as_json: JsonOption = False,
    deid: Annotated[
        bool, typer.Option("--deid", help="De-identify (PS3.15 Annex E, the project key) first.")
    ] = False,
    deid_option: Annotated[
        list[str] | None, typer.Option("--deid-option", help="Annex E option (retain-uids...).")
    ] = None,
    associations: Annotated[
        int,
        typer.Option(
            "--associations",
            min=1,
            max=32,
            help="C-STORE: send over N associations at once (receivers that accept several).",
        ),
    ] = 1,
) -> None:
    """Send local studies, series, instances or files to a server (STOW-RS or C-STORE)."""
    from dicomstation.pipeline.actions import files_of, send_files

    _check_items(items)
    if deid_option and not deid:
        raise UsageError("--deid-option needs --deid")
    config = _outgoing_config(deid_option or []) if deid else None
    with open_database(db) as database:
        files = files_of(database, items)
        if config is not None:
            from dicomstation.deid.outgoing import deidentified  # pydicom: only with --deid

            with deidentified(files, config, database.staging_dir("deid-send")) as (out, refused):
                _send_deidentified(server, concurrency, out, refused, as_json, associations)
            return
        with _node(server, concurrency) as node, progress_bar(f"send {server}") as progress:
            _set_associations(node, associations)
            report = send_files(node, files, progress=progress)
    _summary(report, "sent", as_json)


def _outgoing_config(options: list[str]) -> DeidConfig:
    from dicomstation.deid.outgoing import outgoing_config
    from dicomstation.settings import Settings

    return outgoing_config(Settings.load().deid_key, options)


def _set_associations(node: object, associations: int) -> None:
    """``--associations`` for a DIMSE node (DICOMweb sends use ``--concurrency``)."""
    if hasattr(node, "associations"):
        node.associations = associations


def _send_deidentified(
    server: str,
    concurrency: int,
    files: list[Path],
    refused: dict[str, str],
    as_json: bool,
    associations: int = 1,
) -> None:
    """Send the de-identified copies; name each refused original; exit 1/3 when any was."""
    from rich.text import Text

    from dicomstation.pipeline.actions import send_files

    for path, reason in sorted(refused.items()):
        line = f"refused: {reason}" if path in reason else f"{path}: {reason}"
        err_console.print(Text(line), soft_wrap=True)
    if not files:
        raise typer.Exit(int(ExitCode.NOTHING_DONE))
    with _node(server, concurrency) as node, progress_bar(f"send {server}") as progress:
        _set_associations(node, associations)
        report = send_files(node, files, progress=progress)
    _summary(report, "sent", as_json)
    if refused:
        raise typer.Exit(int(ExitCode.PARTLY_FAILED))


def register(app: typer.Typer) -> None:
    """Add query, metadata, fetch and send to ``app``."""
    app.command("query")(query)
    app.command("metadata")(metadata)
    app.command("fetch")(fetch)
    app.command("send")(send)
