"""``dicomstation ui``: the web UI and the DICOMweb server over the local database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dicomstation.cli.common import DbOption, console, handle_errors, open_database

__all__ = ["register"]


@handle_errors
def ui(
    db: DbOption = None,
    host: Annotated[
        str,
        typer.Option(
            help="Address to bind. Anything but loopback requires --username or --token-file."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8042,
    username: Annotated[
        str, typer.Option(help="Require HTTP Basic auth with this user (the password is prompted).")
    ] = "",
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="Require this bearer token (read from the file, never from the command line)."
        ),
    ] = None,
    cors: Annotated[
        list[str] | None,
        typer.Option(help="Allow this browser origin (CORS), e.g. an OHIF viewer; repeatable."),
    ] = None,
) -> None:
    """Serve the web UI at http://HOST:PORT/ and DICOMweb at http://HOST:PORT/dicom-web."""
    import uvicorn

    from dicomstation.config import Secret
    from dicomstation.server import ServerOptions
    from dicomstation.settings import settings_path
    from dicomstation.web import Workstation, create_ui_app

    password = Secret(typer.prompt("password", hide_input=True) if username else "")
    token = Secret(token_file.read_text(encoding="utf-8").strip() if token_file else "")
    options = ServerOptions(
        host=host,
        port=port,
        username=username,
        password=password,
        token=token,
        cors_origins=tuple(cors or ()),
    )
    options.check()
    database = open_database(db)
    try:
        app = create_ui_app(Workstation(database, settings_path()), options)
        console.print(
            f"UI: http://{host}:{port}/   DICOMweb: http://{host}:{port}/dicom-web",
            highlight=False,
            soft_wrap=True,
        )
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        database.close()


def register(app: typer.Typer) -> None:
    """Add ``ui`` to the app."""
    app.command("ui")(ui)
