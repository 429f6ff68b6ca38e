"""``dicomstation run PIPELINE.toml`` and ``dicomstation jobs list|show|retry|cancel``.

Pipelines run through :mod:`dicomstation.pipeline`; the job ledger is the file
``jobs.sqlite`` in the local database folder, so ``jobs`` commands and the web
UI see the same jobs. Ctrl-C stops a run cleanly: running items stop at a safe
point, the ledger keeps every finished step, and running the file again resumes.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from dicomstation.cli.common import (
    DbOption,
    JsonOption,
    console,
    err_console,
    handle_errors,
    print_json,
    printed_warnings,
)
from dicomstation.errors import DicomStationError

if TYPE_CHECKING:  # the pipeline (and Dask, the views) are imported when a command runs
    from dicomstation.config import ServerConfig
    from dicomstation.pipeline import Ledger, Pipeline, RunOptions, RunReport
    from dicomstation.pipeline.dask_executor import DaskExecutor

__all__ = ["cli_run_options", "database_path", "register", "servers_for"]

jobs_app = typer.Typer(help="Pipeline jobs in the ledger: list, show, retry, cancel.")

ConcurrencyOpt = Annotated[
    int | None, typer.Option("--concurrency", min=1, max=64, help="Work items at once.")
]
ClusterOpt = Annotated[
    str | None,
    typer.Option("--cluster", help="Run on Dask: local:N starts N worker processes here."),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option("--scheduler", help="Run on a running Dask cluster: tcp://HOST:PORT."),
]


def database_path(path: Path | None) -> Path:
    """``--db``, else the settings' database, else the default folder."""
    if path is not None:
        return path
    from dicomstation.settings import Settings, default_database_path

    configured = Settings.load().database
    return Path(configured) if configured else default_database_path()


def servers_for(pipeline: Pipeline) -> dict[str, ServerConfig]:
    """The configured servers the pipeline names (a DICOMweb URL stands for itself)."""
    from dicomstation.config import DicomWebServer
    from dicomstation.settings import Settings

    settings = Settings.load()
    servers: dict[str, ServerConfig] = {}
    for name in pipeline.server_names():
        if name.startswith(("http://", "https://")):
            servers[name] = DicomWebServer(name, name.rstrip("/"))
        else:
            servers[name] = settings.server(name)
    return servers


def cli_run_options(pipeline: Pipeline, db: Path | None, **extra: object) -> RunOptions:
    """Run options for a CLI command: database, servers, our DIMSE identity."""
    from dicomstation.pipeline import RunOptions
    from dicomstation.settings import Settings

    return RunOptions(
        database=database_path(db),
        servers=servers_for(pipeline),
        local=Settings.load().local,
        **extra,  # type: ignore[arg-type]
    )


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_report(report: RunReport, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "job": report.job_id,
                "items": report.total,
                "done": report.done,
                "failed": dict(report.failed),
                "skipped": dict(report.skipped),
                "already_done": report.already_done,
                "interrupted": report.interrupted,
            }
        )
    else:
        for key, reason in list(report.skipped.items())[:5]:
            err_console.print(f"[dim]skipped[/] {reason or key}", highlight=False)
        for key, error in list(report.failed.items())[:20]:
            err_console.print(f"[red]failed[/] {error or key}", highlight=False)
        skipped = f"{len(report.skipped)} skipped, " if report.skipped else ""
        console.print(
            f"job {report.job_id}: {report.done} done, {skipped}{len(report.failed)} failed, "
            f"{report.already_done} already done" + (" (interrupted)" if report.interrupted else "")
        )
    if report.interrupted:
        err_console.print("stopped; run the same pipeline again to resume")
        raise typer.Exit(130)
    if report.failed:  # 1: partly failed, 3: nothing done (the exit codes of every command)
        raise typer.Exit(1 if report.done or report.already_done else 3)


def run_and_report(pipeline: Pipeline, options: RunOptions, as_json: bool) -> None:
    """Run with a live display (unless JSON), print the outcome, exit non-zero on failure."""
    with _sigterm_as_interrupt(), printed_warnings():  # above the live display, on stderr
        if as_json:
            report = pipeline.run(options)
        else:
            from dicomstation.cli.pipeline_view import live_status

            with live_status(pipeline.name) as show:
                report = pipeline.run(_with_progress(options, show))
    _print_report(report, as_json)


def _with_progress(options: RunOptions, show: object) -> RunOptions:
    from dataclasses import replace

    return replace(options, progress=show)  # type: ignore[arg-type]


@handle_errors
def run(
    pipeline_file: Annotated[
        Path, typer.Argument(help="A pipeline TOML file (docs/pipelines.md).")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the work items and their state; run nothing.")
    ] = False,
    concurrency: ConcurrencyOpt = None,
    no_retry: Annotated[
        bool, typer.Option("--no-retry-failed", help="Leave items that failed before alone.")
    ] = False,
    cluster: ClusterOpt = None,
    scheduler: SchedulerOpt = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run (or resume) a pipeline over its source's work items."""
    from dicomstation.pipeline import Pipeline

    pipeline = Pipeline.from_file(pipeline_file)
    executor = _executor(cluster, scheduler, db)
    options = cli_run_options(
        pipeline, db, concurrency=concurrency, retry_failed=not no_retry, executor=executor
    )
    if dry_run:
        _dry_run(pipeline, options, as_json)
        return
    run_and_report(pipeline, options, as_json)


def _executor(cluster: str | None, scheduler: str | None, db: Path | None) -> DaskExecutor | None:
    """The executor ``--cluster``/``--scheduler`` ask for (Dask imported only then)."""
    from dicomstation.pipeline.cluster_info import CLUSTER_INFO
    from dicomstation.pipeline.dask_executor import executor_for

    return executor_for(cluster, scheduler, database_path(db) / CLUSTER_INFO)


def _dry_run(pipeline: Pipeline, options: RunOptions, as_json: bool) -> None:
    from dicomstation.pipeline import Ledger, list_items

    items = list_items(pipeline, options)
    states: dict[str, str] = {}
    if options.ledger_path.exists():
        with Ledger.open(options.ledger_path) as ledger:
            try:
                states = {s.item.key: s.state.value for s in ledger.items(pipeline.job_id)}
            except DicomStationError:
                states = {}
    rows = [{"item": i.key, "state": states.get(i.key, "new")} for i in items]
    if as_json:
        print_json(
            {"job": pipeline.job_id, "steps": [s.name for s in pipeline.steps], "items": rows}
        )
        return
    steps = ", ".join(s.name for s in pipeline.steps)
    console.print(f"job {pipeline.job_id} ({pipeline.name}): steps {steps}")
    for row in rows:
        console.print(f"  {row['state']:<9} {row['item']}", highlight=False)
    console.print(f"{len(rows)} work item(s)")


@contextmanager
def _ledger(db: Path | None) -> Iterator[Ledger]:
    from dicomstation.pipeline.ledger import LEDGER_NAME, Ledger  # not the steps' libraries

    with Ledger.open(database_path(db) / LEDGER_NAME) as ledger:
        yield ledger


@jobs_app.command("list")
@handle_errors
def jobs_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List jobs with their item counts."""
    with _ledger(db) as ledger:
        jobs = ledger.jobs()
    if as_json:
        print_json([{"job": j.job_id, "name": j.name, "counts": j.counts} for j in jobs])
    elif not jobs:
        typer.echo("no jobs")  # not rich: nothing to lay out
    else:
        from dicomstation.cli.pipeline_view import job_table

        console.print(job_table(jobs))


@jobs_app.command("show")
@handle_errors
def jobs_show(
    job: Annotated[str, typer.Argument(help="Job id (a unique prefix is enough).")],
    failed: Annotated[bool, typer.Option("--failed", help="Only failed items.")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a job's work items, their steps and errors."""
    with _ledger(db) as ledger:
        job_id = ledger.resolve(job)
        items = [i for i in ledger.items(job_id) if not failed or i.state.value == "failed"]
    if as_json:
        print_json([_item_json(i) for i in items])
    else:
        from dicomstation.cli.pipeline_view import item_table

        console.print(item_table(items))


def _item_json(item: object) -> dict[str, object]:
    from dicomstation.pipeline import ItemStatus

    assert isinstance(item, ItemStatus)
    return {
        "item": item.item.key,
        "state": item.state.value,
        "attempts": item.attempts,
        "error": item.error,
        "steps": [
            {
                "step": r.step,
                "state": r.state.value,
                "outputs": list(r.outputs),
                "error": r.error,
                "seconds": round(r.seconds, 3),
            }
            for r in item.steps
        ],
    }


@jobs_app.command("retry")
@handle_errors
def jobs_retry(
    job: Annotated[str, typer.Argument(help="Job id (prefix).")],
    item: Annotated[str | None, typer.Argument(help="Only this work item.")] = None,
    now: Annotated[bool, typer.Option("--run/--no-run", help="Run the job right away.")] = True,
    concurrency: ConcurrencyOpt = None,
    cluster: ClusterOpt = None,
    scheduler: SchedulerOpt = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Put failed, cancelled and skipped items back to pending, and run the job again."""
    with _ledger(db) as ledger:
        job_id = ledger.resolve(job)
        count = ledger.retry(job_id, item)
        definition = ledger.job(job_id).definition
    err_console.print(f"{count} item(s) of job {job_id} pending again")
    if now:
        from dicomstation.pipeline import Pipeline

        pipeline = Pipeline.from_json(definition)
        executor = _executor(cluster, scheduler, db)
        options = cli_run_options(pipeline, db, concurrency=concurrency, executor=executor)
        run_and_report(pipeline, options, as_json)


@jobs_app.command("cancel")
@handle_errors
def jobs_cancel(
    job: Annotated[str, typer.Argument(help="Job id (prefix).")],
    item: Annotated[str | None, typer.Argument(help="Only this work item.")] = None,
    db: DbOption = None,
) -> None:
    """Cancel a job's pending items (a running driver stops after its current items)."""
    with _ledger(db) as ledger:
        job_id = ledger.resolve(job)
        count = ledger.cancel(job_id, item)
    console.print(f"{count} item(s) of job {job_id} cancelled; `jobs retry` brings them back")


def register(app: typer.Typer) -> None:
    """Add ``run`` and the ``jobs`` group."""
    app.command("run")(run)
    app.add_typer(jobs_app, name="jobs")
