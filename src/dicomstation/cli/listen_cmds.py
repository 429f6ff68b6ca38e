"""``dicomstation listen``: a persistent DICOM storage listener (like Slicer's DICOM listener).

Peers (modalities, PACS answering a C-MOVE, ``storescu``) send C-STORE to us;
every complete instance is indexed into the local database before it is answered
Success. Binds 127.0.0.1 unless ``--host`` says otherwise; ``--allow-ae`` limits
who may send; Ctrl-C (or SIGTERM) stops it cleanly after indexing what was
received. Refused instances and associations are logged to stderr as they happen.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dicomstation.cli.common import DbOption, console, handle_errors, open_database
from dicomstation.models import Phase

if TYPE_CHECKING:
    from dicomstation.models import ProgressEvent

__all__ = ["register"]


def _printer(verbose: bool) -> Any:
    def show(event: ProgressEvent) -> None:
        if event.phase is Phase.FAILED:
            return  # logged at once, naming the peer (see _log_to_stderr)
        if verbose and event.phase is Phase.SKIPPED:
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


@contextlib.contextmanager
def _log_to_stderr() -> Iterator[None]:
    """Show dicomstation's warnings (refusals, rejected associations) on stderr, timestamped."""
    logger = logging.getLogger("dicomstation")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.WARNING)
    previous = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = previous


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
    allow_ae: Annotated[
        list[str] | None,
        typer.Option("--allow-ae", help="Calling AE title allowed to send (repeatable)."),
    ] = None,
    acse_timeout: Annotated[
        float,
        typer.Option("--acse-timeout", min=0.1, help="Seconds to wait for an association request."),
    ] = 10.0,
    idle_timeout: Annotated[
        float,
        typer.Option("--idle-timeout", min=0.1, help="Abort associations idle this many seconds."),
    ] = 30.0,
    max_associations: Annotated[
        int, typer.Option("--max-associations", min=1, help="Concurrent associations accepted.")
    ] = 16,
    max_instance_mb: Annotated[
        int, typer.Option("--max-instance-mb", min=1, help="Refuse larger instances (MB).")
    ] = 4096,
) -> None:
    """Receive C-STORE into the local database until Ctrl-C."""
    from dicomstation.nodes.listener import StorageListener  # pynetdicom: only when listening
    from dicomstation.settings import Settings

    local = Settings.load().local
    with open_database(db) as database, _log_to_stderr():
        listener = StorageListener(
            database,
            ae_title=ae or local.ae_title,
            port=local.port if port is None else port,
            host=host,
            progress=_printer(verbose),
            timeout=idle_timeout,
            acse_timeout=acse_timeout,
            max_associations=max_associations,
            allow_ae=allow_ae or None,
            max_instance_bytes=max_instance_mb * 1024 * 1024,
        )
        listener.start()
        allowed = f", from {', '.join(listener.allow_ae)} only" if listener.allow_ae else ""
        typer.echo(
            f"listening as {listener.ae_title} on {listener.host}:{listener.port}{allowed}, "
            f"storing into {database.root} (Ctrl-C to stop)",
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
