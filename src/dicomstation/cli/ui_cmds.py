"""``dicomstation ui``: the web UI and the DICOMweb server over the local database."""

from __future__ import annotations

import errno
import socket
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dicomstation.cli.common import DbOption, console, handle_errors, open_database

if TYPE_CHECKING:
    from dicomstation.server import ServerOptions

__all__ = ["DEFAULT_PORT", "listen_socket", "register"]

#: The UI's default port: not Orthanc's 8042, nor 8080/8000 (dcm4chee, many servers),
#: 8888 (Jupyter), 104/11112/4242 (DIMSE).
DEFAULT_PORT = 8743

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
    return options


def _with_password(options: ServerOptions) -> ServerOptions:
    from dicomstation.config import Secret

    if not options.username:
        return options
    options = replace(options, password=Secret(typer.prompt("password", hide_input=True)))
    options.check()
    return options


def listen_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, made before anything is printed.

    Raises
    ------
    UsageError
        One line naming the address when the port is taken (another dicomstation,
        Orthanc...) or cannot be used.
    """
    from dicomstation.errors import UsageError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"{where} is already in use (another dicomstation ui, a PACS...?): "
                "choose another port with --port"
            ) from None
        raise UsageError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    return sock


@handle_errors
def ui(
    db: DbOption = None,
    host: Annotated[
        str,
        typer.Option(help="Address to bind. Anything but loopback requires auth."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: a free one).")] = DEFAULT_PORT,
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
    options = _options(host, port, username, token_file, no_token, cors, (tls_cert, tls_key))
    sock = listen_socket(host, port)  # a taken port is said before anything is printed
    try:
        _serve(sock, _with_password(options), db, (tls_cert, tls_key), token_file)
    finally:
        sock.close()


def _serve(
    sock: socket.socket,
    options: ServerOptions,
    db: Path | None,
    tls: tuple[Path | None, Path | None],
    token_file: Path | None,
) -> None:
    from dicomstation.server.running import uvicorn_config
    from dicomstation.settings import settings_path
    from dicomstation.web import Workstation, create_ui_app
    from dicomstation.web.app import login_url

    host, port = options.host, int(sock.getsockname()[1])
    options = replace(options, port=port)
    database = open_database(db)
    try:
        app = create_ui_app(Workstation(database, settings_path()), options)
        shown = f"[{host}]" if ":" in host else host
        root = f"{options.scheme}://{shown}:{port}"
        page = f"{root}/" if token_file else login_url(root, options)
        console.print(f"UI: {page}", highlight=False, markup=False, soft_wrap=True)
        how = " (send Authorization: Bearer <token>)" if options.token else ""
        console.print(f"DICOMweb: {root}/dicom-web{how}", highlight=False, soft_wrap=True)
        console.print(ohif_line(root), highlight=False, markup=False, soft_wrap=True)
        if token_file:
            console.print(f"token: the content of {token_file}", highlight=False, soft_wrap=True)
        import uvicorn

        uvicorn.Server(uvicorn_config(app, host, port, *tls)).run(sockets=[sock])
    finally:
        database.close()


def ohif_line(root: str) -> str:
    """Where OHIF is (``/viewer/`` of the UI, signed in by the UI link), or how to install it."""
    from dicomstation.web.ohif import INSTALL_HINT, PREFIX, find_ohif

    found = find_ohif()
    if found is None:
        return f"OHIF viewer: {INSTALL_HINT}"
    return f"OHIF viewer: {root}{PREFIX}/ (OHIF {found.version}; open the UI link first to sign in)"


def register(app: typer.Typer) -> None:
    """Add ``ui`` to the app."""
    app.command("ui")(ui)
