"""What every command shares: options, settings, errors, tables/JSON, progress bars.

Imported by every command module, so it imports nothing heavy: rich, the
database, the settings and the models are imported when a function needs them,
and ``console``/``err_console`` become rich Consoles on first use.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar, cast

import typer

from dicomstation.errors import ConfigError, DicomStationError, TransferError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from dicomstation.cli.warning_printer import WarningPrinter
    from dicomstation.database import Database
    from dicomstation.models import Level, ProgressEvent, TransferReport

__all__ = [
    "DbOption",
    "ExitCode",
    "JsonOption",
    "UsageError",
    "console",
    "err_console",
    "exit_for",
    "handle_errors",
    "open_database",
    "parse_level",
    "plain_help",
    "print_json",
    "print_refs",
    "printed_warnings",
    "progress_bar",
]


class _LazyConsole:
    """Becomes a :class:`rich.console.Console` on first use (rich costs ~0.1 s to import).

    The object turns itself into the Console (its class is swapped in place), so
    ``isinstance(console, Console)`` holds and every reference sees the same console.
    """

    _lock = threading.Lock()

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__["_console_kwargs"] = kwargs

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        with self._lock:  # a thread coming during the build waits for it (worker threads warn)
            kwargs = self.__dict__.pop("_console_kwargs", None)
            if kwargs is not None:
                from rich.console import Console

                built = Console(**kwargs)  # built whole, then published by the class swap
                self.__dict__.update(built.__dict__)
                self.__class__ = Console  # type: ignore[assignment]
            elif type(self) is _LazyConsole:  # no arguments and no Console: a failed build
                raise AttributeError(name)
        return getattr(self, name)


console: Console = cast("Console", _LazyConsole())
err_console: Console = cast("Console", _LazyConsole(stderr=True))

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="Local database folder (default: settings, then user data dir)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

P = ParamSpec("P")
R = TypeVar("R")


class ExitCode(enum.IntEnum):
    """The exit codes of every ``dicomstation`` command (documented in the README).

    0 everything asked was done; 1 partly failed (some items done, some not: the
    failures are listed); 2 usage error (a bad option value, a missing file, an
    unknown server, a settings file that cannot be used); 3 nothing done (the
    server, UID or file named in the message failed); 4 internal error (a bug:
    please report it with the command); 130 interrupted (Ctrl-C).
    """

    DONE = 0
    PARTLY_FAILED = 1
    USAGE = 2
    NOTHING_DONE = 3
    INTERNAL = 4
    INTERRUPTED = 130


# Advice meant for a backend's API, not for a user of the command.
_API_ADVICE = re.compile(r"\s*Use force=True to force reading\.?")


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", _API_ADVICE.sub("", text)).strip()


def fail(message: str, code: ExitCode) -> typer.Exit:
    """Print ``error: message`` on one line of stderr; the Exit to raise.

    (click's ``secho``, not rich: an error exits at once and need not import rich.)
    """
    typer.secho(f"error: {_one_line(message)}", err=True, fg="red", bold=True)
    return typer.Exit(int(code))


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn every error into a one-line message on stderr and an :class:`ExitCode`.

    No traceback reaches the user: errors of the package say what was wrong
    (server, UID, file); anything else is a bug, reported as one line too.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with printed_warnings(keep_filters=True):  # never Python's file:line and raw text
                return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
            raise
        except ConfigError as exc:
            raise fail(str(exc), ExitCode.USAGE) from None
        except TransferError as exc:
            raise fail(str(exc), ExitCode.PARTLY_FAILED) from None
        except DicomStationError as exc:
            raise fail(str(exc), ExitCode.NOTHING_DONE) from None
        except KeyboardInterrupt:
            typer.secho("interrupted", err=True, fg="yellow")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except Exception as exc:  # the last line of defence: no traceback, one line
            text = f"internal error ({type(exc).__name__}: {exc}); please report the command"
            raise fail(text, ExitCode.INTERNAL) from None

    wrapper.__doc__ = plain_help(func.__doc__)
    return wrapper


def plain_help(doc: str | None) -> str | None:
    """A docstring as help text: reST literals (````--url````) and roles become plain quotes."""
    if doc is None:
        return None
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"'\1'", doc)
    return re.sub(r"``([^`]+)``", r"'\1'", text)


def exit_for(report: TransferReport) -> None:
    """Raise the Exit a transfer report calls for (nothing when all went well)."""
    if not report.failed:
        return
    done = bool(report.succeeded or report.skipped)
    raise typer.Exit(int(ExitCode.PARTLY_FAILED if done else ExitCode.NOTHING_DONE))


def parse_level(value: str, option: str = "--level") -> Level:
    """``--level`` normalised; an unknown value is a :class:`UsageError` naming it."""
    from dicomstation.models import Level

    try:
        return Level.parse(value)
    except ValueError:
        raise UsageError(
            f"{option} {value!r}: unknown level; use patient, study, series or instance"
        ) from None


def open_database(path: Path | None) -> Database:
    """The database named by ``--db``, else the settings' one, else the default folder."""
    from dicomstation.database import Database

    if path is None:
        from dicomstation.settings import Settings, default_database_path

        configured = Settings.load().database
        path = Path(configured) if configured else default_database_path()
    return Database.open(path)


def print_json(data: Any) -> None:
    """Print JSON to stdout (plain, for pipes)."""
    typer.echo(json.dumps(data, indent=2, default=str))


#: Table columns per ref class (by class name: the models are imported only when printing).
_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "PatientRef": (
        ("Patient ID", "patient_id"),
        ("Name", "patient_name"),
        ("Birth date", "birth_date"),
        ("Sex", "sex"),
    ),
    "StudyRef": (
        ("Patient", "patient_name"),
        ("Patient ID", "patient_id"),
        ("Date", "study_date"),
        ("Description", "description"),
        ("Modalities", "modalities"),
        ("Series", "num_series"),
        ("Instances", "num_instances"),
        ("Study UID", "study_uid"),
    ),
    "SeriesRef": (
        ("#", "series_number"),
        ("Modality", "modality"),
        ("Description", "description"),
        ("Instances", "num_instances"),
        ("Series UID", "series_uid"),
    ),
    "InstanceRef": (
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


def print_refs(
    refs: Sequence[Any], as_json: bool, servers: Sequence[Sequence[str]] | None = None
) -> None:
    """Print refs as a rich table, or their DICOM JSON when ``as_json``.

    ``servers`` (one list per ref) adds a "Servers" column: who holds each row.
    """
    if as_json:
        print_json([dict(ref.json) for ref in refs])
        return
    if not refs:
        typer.echo("no matches")  # not rich: nothing to lay out
        return
    from rich.table import Table

    columns = _COLUMNS[type(refs[0]).__name__]
    table = Table(show_lines=False)
    for title, _ in columns:
        table.add_column(title, overflow="fold")
    if servers is not None:
        table.add_column("Servers", overflow="fold")
    for number, ref in enumerate(refs):
        cells = [_cell(getattr(ref, attr)) for _, attr in columns]
        if servers is not None:
            cells.append(", ".join(servers[number]))
        table.add_row(*cells)
    console.print(table)


@functools.cache
def _transfer_columns() -> tuple[type, type]:
    """The progress bar's instance-count and MB/s columns (rich imported on first use)."""
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class CountColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            done = int(task.completed)
            if task.total is None:
                return Text(f"{done} instances" if done else "")
            return Text(f"{done}/{int(task.total)} instances")

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            mb = float(task.fields.get("mb", 0.0))
            elapsed = task.elapsed or 0.0
            rate = mb / elapsed if elapsed > 0 else 0.0
            return Text(f"{mb:8.1f} MB {rate:7.1f} MB/s", style="cyan")

    return CountColumn, RateColumn


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator[Callable[[ProgressEvent], None]]:
    """A rich progress bar (instances, MB, MB/s); yields the callback to pass to nodes."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    count_column, rate_column = _transfer_columns()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        count_column(),
        rate_column(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task(description, total=None, mb=0.0)
        started = time.perf_counter()

        def update(event: ProgressEvent) -> None:
            bar.update(task, completed=event.done, total=event.total, mb=event.bytes_done / 1e6)

        yield update
        bar.update(task, description=f"{description} ({time.perf_counter() - started:.1f}s)")


def printed_warnings(
    *, keep_filters: bool = False
) -> contextlib.AbstractContextManager[WarningPrinter]:
    """Print a command's warnings as they occur, bounded (:mod:`.warning_printer`).

    Every command runs inside one with ``keep_filters`` (the filters as they are: a
    library's deprecations stay hidden); long commands show every warning inside.
    """
    from dicomstation.cli.warning_printer import printed_warnings as printed

    return printed(err_console, keep_filters=keep_filters)
