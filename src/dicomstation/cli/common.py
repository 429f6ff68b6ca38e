"""What every command shares: options, settings, errors, tables/JSON, progress bars."""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from dicomstation.database import Database
from dicomstation.errors import DicomStationError
from dicomstation.models import InstanceRef, PatientRef, ProgressEvent, SeriesRef, StudyRef
from dicomstation.settings import Settings, default_database_path

__all__ = [
    "DbOption",
    "JsonOption",
    "console",
    "err_console",
    "handle_errors",
    "open_database",
    "print_json",
    "print_refs",
    "progress_bar",
]

console = Console()
err_console = Console(stderr=True)

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="Local database folder (default: settings, then user data dir)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

P = ParamSpec("P")
R = TypeVar("R")


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn dicomstation errors into a one-line message on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except DicomStationError as exc:
            err_console.print(Text(f"error: {exc}", style="bold red"))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print(Text("interrupted", style="yellow"))
            raise typer.Exit(130) from None

    return wrapper


def open_database(path: Path | None) -> Database:
    """The database named by ``--db``, else the settings' one, else the default folder."""
    if path is None:
        configured = Settings.load().database
        path = Path(configured) if configured else default_database_path()
    return Database.open(path)


def print_json(data: Any) -> None:
    """Print JSON to stdout (plain, for pipes)."""
    typer.echo(json.dumps(data, indent=2, default=str))


_COLUMNS: dict[type, tuple[tuple[str, str], ...]] = {
    PatientRef: (
        ("Patient ID", "patient_id"),
        ("Name", "patient_name"),
        ("Birth date", "birth_date"),
        ("Sex", "sex"),
    ),
    StudyRef: (
        ("Patient", "patient_name"),
        ("Patient ID", "patient_id"),
        ("Date", "study_date"),
        ("Description", "description"),
        ("Modalities", "modalities"),
        ("Series", "num_series"),
        ("Instances", "num_instances"),
        ("Study UID", "study_uid"),
    ),
    SeriesRef: (
        ("#", "series_number"),
        ("Modality", "modality"),
        ("Description", "description"),
        ("Instances", "num_instances"),
        ("Series UID", "series_uid"),
    ),
    InstanceRef: (
        ("#", "instance_number"),
        ("Frames", "number_of_frames"),
        ("SOP class", "sop_class_uid"),
        ("SOP instance UID", "sop_instance_uid"),
    ),
}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def print_refs(refs: Sequence[Any], as_json: bool) -> None:
    """Print refs as a rich table, or their DICOM JSON when ``as_json``."""
    if as_json:
        print_json([dict(ref.json) for ref in refs])
        return
    if not refs:
        console.print("no matches")
        return
    columns = _COLUMNS[type(refs[0])]
    table = Table(show_lines=False)
    for title, _ in columns:
        table.add_column(title, overflow="fold")
    for ref in refs:
        table.add_row(*(_cell(getattr(ref, attr)) for _, attr in columns))
    console.print(table)


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        mb = float(task.fields.get("mb", 0.0))
        elapsed = task.elapsed or 0.0
        rate = mb / elapsed if elapsed > 0 else 0.0
        return Text(f"{mb:8.1f} MB {rate:7.1f} MB/s", style="cyan")


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator[Callable[[ProgressEvent], None]]:
    """A rich progress bar (instances, MB, MB/s); yields the callback to pass to nodes."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} instances"),
        _RateColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task(description, total=None, mb=0.0)
        started = time.perf_counter()

        def update(event: ProgressEvent) -> None:
            bar.update(task, completed=event.done, total=event.total, mb=event.bytes_done / 1e6)

        yield update
        bar.update(task, description=f"{description} ({time.perf_counter() - started:.1f}s)")
