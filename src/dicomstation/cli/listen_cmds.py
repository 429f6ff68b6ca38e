"""``dicomstation listen``: a persistent DICOM storage listener (like Slicer's DICOM listener).

Peers (modalities, PACS answering a C-MOVE, ``storescu``) send C-STORE to us;
every complete instance is indexed into the local database. Binds 127.0.0.1
unless ``--host`` says otherwise; Ctrl-C (or SIGTERM) stops it cleanly after
indexing what was received.
"""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer

from dicomstation.cli.common import DbOption, console, err_console, handle_errors, open_database
from dicomstation.models import Phase, ProgressEvent
from dicomstation.nodes.listener import StorageListener
from dicomstation.settings import Settings

__all__ = ["register"]


def _printer(verbose: bool) -> Any:
    def show(event: ProgressEvent) -> None:
        if event.phase is Phase.FAILED:
            err_console.print(f"[red]failed[/] {event.uid}: {event.message}")
        elif verbose and event.phase is Phase.SKIPPED:
            console.print(f"already present {event.uid}")
        elif verbose:
            console.print(f"received {event.uid} ({event.done} so far)")

    return show


def _wait_for_signal() -> None:
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


@handle_errors
def listen(
    ae: Annotated[
        str | None, typer.Option("--ae", help="Our AE title (default: settings).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=0, max=65535, help="TCP port (0: any free).")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    db: DbOption = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="One line per instance.")
    ] = False,
) -> None:
    """Receive C-STORE into the local database until Ctrl-C."""
    local = Settings.load().local
    with open_database(db) as database:
        listener = StorageListener(
            database,
            ae_title=ae or local.ae_title,
            port=local.port if port is None else port,
            host=host,
            progress=_printer(verbose),
        )
        listener.start()
        typer.echo(
            f"listening as {listener.ae_title} on {listener.host}:{listener.port}, "
            f"storing into {database.root} (Ctrl-C to stop)"
        )
        try:
            _wait_for_signal()
        finally:
            report = listener.stop()
    typer.echo(
        f"stopped: {len(report.succeeded)} received, {len(report.skipped)} already present, "
        f"{len(report.failed)} failed"
    )
    if report.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``listen`` to ``app``."""
    app.command("listen")(listen)
