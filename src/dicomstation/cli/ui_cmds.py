"""``dicomstation ui``: the web UI and the DICOMweb server over the local database."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dicomstation.cli.common import DbOption, console, handle_errors, open_database

if TYPE_CHECKING:
    from dicomstation.server import ServerOptions

__all__ = ["register"]

TlsOption = Annotated[
    Path | None,
    typer.Option(help="Serve HTTPS: PEM certificate chain (with --tls-key)."),
]


def _options(
    host: str,
    port: int,
    username: str,
    token_file: Path | None,
    no_token: bool,
    cors: list[str] | None,
    tls: tuple[Path | None, Path | None],
) -> ServerOptions:
    from dicomstation.config import Secret
    from dicomstation.errors import ConfigError
    from dicomstation.server import ServerOptions

    if no_token and token_file:
        raise ConfigError("--no-token and --token-file contradict each other")
    try:
        token = Secret(token_file.read_text(encoding="utf-8").strip() if token_file else "")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the token file {token_file}: {exc}") from None
    if token_file and not token:
        raise ConfigError(f"the token file {token_file} is empty")
    options = ServerOptions(
        host=host,
        port=port,
        username=username,
        password=Secret("(prompted)" if username else ""),
        token=token,
        cors_origins=tuple(cors or ()),
        tls_cert=tls[0],
        tls_key=tls[1],
    )
    if not no_token:
        options = options.with_launch_token()
    options.check()  # before the prompt: a refused option costs no typing
    if username:
        options = replace(options, password=Secret(typer.prompt("password", hide_input=True)))
        options.check()
    return options


@handle_errors
def ui(
    db: DbOption = None,
    host: Annotated[
        str,
        typer.Option(help="Address to bind. Anything but loopback requires auth."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8042,
    username: Annotated[
        str, typer.Option(help="Also accept HTTP Basic auth with this user (password prompted).")
    ] = "",
    token_file: Annotated[
        Path | None,
        typer.Option(help="Use this token instead of a per-launch one (read from the file)."),
    ] = None,
    no_token: Annotated[
        bool,
        typer.Option(
            "--no-token",
            help="No per-launch token: any local user or process can use the UI "
            "(only for a trusted single-user machine).",
        ),
    ] = False,
    cors: Annotated[
        list[str] | None,
        typer.Option(help="Allow this browser origin (CORS), e.g. an OHIF viewer; repeatable."),
    ] = None,
    tls_cert: TlsOption = None,
    tls_key: Annotated[
        Path | None, typer.Option(help="Serve HTTPS: PEM private key (with --tls-cert).")
    ] = None,
) -> None:
    """Serve the web UI at http://HOST:PORT/ and DICOMweb at http://HOST:PORT/dicom-web.

    A token is generated at each launch and printed in the UI's URL; every request
    needs it (browser cookie set by that URL, ``Authorization: Bearer <token>``,
    or ``?token=``).
    """
    from dicomstation.server.running import uvicorn_config
    from dicomstation.settings import settings_path
    from dicomstation.web import Workstation, create_ui_app
    from dicomstation.web.app import login_url

    options = _options(host, port, username, token_file, no_token, cors, (tls_cert, tls_key))
    database = open_database(db)
    try:
        app = create_ui_app(Workstation(database, settings_path()), options)
        shown = f"[{host}]" if ":" in host else host
        root = f"{options.scheme}://{shown}:{port}"
        page = f"{root}/" if token_file else login_url(root, options)
        console.print(f"UI: {page}", highlight=False, markup=False, soft_wrap=True)
        how = " (send Authorization: Bearer <token>)" if options.token else ""
        console.print(f"DICOMweb: {root}/dicom-web{how}", highlight=False, soft_wrap=True)
        if token_file:
            console.print(f"token: the content of {token_file}", highlight=False, soft_wrap=True)
        import uvicorn

        uvicorn.Server(uvicorn_config(app, host, port, tls_cert, tls_key)).run()
    finally:
        database.close()


def register(app: typer.Typer) -> None:
    """Add ``ui`` to the app."""
    app.command("ui")(ui)
