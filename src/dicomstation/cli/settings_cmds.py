"""``dicomstation server ...`` and ``dicomstation auth ...``: configure once, reuse everywhere."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Annotated

import typer
from rich.table import Table

from dicomstation.cli.common import console, handle_errors, print_json
from dicomstation.config import Credentials, DicomWebServer, DimseServer, Secret
from dicomstation.errors import ConfigError
from dicomstation.nodes import open_node
from dicomstation.nodes.http_errors import redact
from dicomstation.settings import Settings, check_url

server_app = typer.Typer(help="Configure remote DICOMweb and DIMSE servers.", no_args_is_help=True)
auth_app = typer.Typer(
    help="Global DICOMweb credentials (used only by servers added with --use-global-auth).",
    no_args_is_help=True,
)


def _read_secret(from_stdin: bool, what: str) -> Secret:
    if not from_stdin:
        return Secret("")
    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise ConfigError(f"no {what} on standard input")
    return Secret(value)


@server_app.command("add")
@handle_errors
def server_add(
    name: str,
    url: Annotated[str, typer.Option(help="DICOMweb root URL (for a DICOMweb server).")] = "",
    ae_title: Annotated[str, typer.Option("--ae", help="Called AE title (DIMSE).")] = "",
    host: Annotated[str, typer.Option(help="Host (DIMSE).")] = "",
    port: Annotated[int, typer.Option(help="Port (DIMSE).")] = 104,
    calling_ae: Annotated[str, typer.Option(help="Our AE title (DIMSE).")] = "DICOMSTATION",
    username: Annotated[str, typer.Option("--user", help="Basic auth user for this server.")] = "",
    password_stdin: Annotated[
        bool, typer.Option(help="Read this server's password from stdin.")
    ] = False,
    token_stdin: Annotated[bool, typer.Option(help="Read a bearer token from stdin.")] = False,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Disable TLS verification.")
    ] = False,
    ca_bundle: Annotated[str, typer.Option(help="CA bundle for TLS verification.")] = "",
    use_global_auth: Annotated[
        bool, typer.Option(help="Send the global credentials (auth set) to this server.")
    ] = False,
    allow_http: Annotated[
        bool, typer.Option("--allow-http", help="Confirm replacing an https URL by http.")
    ] = False,
) -> None:
    """Add or replace a server: ``--url`` for DICOMweb, ``--ae/--host/--port`` for DIMSE.

    A URL with ``user:password@`` is refused (give ``--user`` and
    ``--password-stdin``); the secrets given are bound to the URL's origin.
    """
    settings = Settings.load()
    if url and ae_title:
        raise ConfigError("give either --url (DICOMweb) or --ae/--host/--port (DIMSE), not both")
    if url:
        creds = Credentials(
            username=username,
            password=_read_secret(password_stdin, "password"),
            token=_read_secret(token_stdin, "token"),
        )
        server: DicomWebServer | DimseServer = DicomWebServer(
            name=name,
            url=check_url(name, url),
            credentials=creds,
            verify_tls=not no_verify,
            ca_bundle=ca_bundle,
            use_global_auth=use_global_auth,
        )
    elif ae_title and host:
        server = DimseServer(
            name=name, ae_title=ae_title, host=host, port=port, calling_ae=calling_ae
        )
    else:
        raise ConfigError("a server needs --url, or --ae and --host (and --port)")
    path = settings.with_server(server, allow_insecure_downgrade=allow_http).save()
    console.print(f"saved server [bold]{name}[/] ({server.protocol.value}) in {path}")


def _auth_label(server: DicomWebServer) -> str:
    creds = server.credentials
    if creds.token:
        return "token"
    if creds.client_id:
        return f"oauth2 client {creds.client_id}"
    if creds.username:
        return f"user {creds.username}"
    return "global" if server.use_global_auth else "none"


@server_app.command("list")
@handle_errors
def server_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List configured servers (secrets are never shown, only whether they are set)."""
    settings = Settings.load()
    rows = []
    for name in sorted(settings.servers):
        s = settings.servers[name]
        if isinstance(s, DicomWebServer):
            rows.append(
                {
                    "name": name,
                    "protocol": "dicomweb",
                    "address": redact(s.url),
                    "auth": _auth_label(s),
                    "tls_verify": s.verify_tls,
                }
            )
        else:
            rows.append(
                {
                    "name": name,
                    "protocol": "dimse",
                    "address": f"{s.ae_title}@{s.host}:{s.port}",
                    "auth": f"calling AE {s.calling_ae}",
                    "tls_verify": None,
                }
            )
    if as_json:
        print_json(rows)
        return
    table = Table("Name", "Protocol", "Address", "Auth", "TLS verify")
    for row in rows:
        table.add_row(*(str("" if v is None else v) for v in row.values()))
    console.print(table)


@server_app.command("remove")
@handle_errors
def server_remove(name: str) -> None:
    """Remove a configured server."""
    Settings.load().without_server(name).save()
    console.print(f"removed server {name}")


@server_app.command("echo")
@handle_errors
def server_echo(name: str) -> None:
    """Check a server answers (C-ECHO for DIMSE, a small QIDO-RS for DICOMweb)."""
    settings = Settings.load()
    node = open_node(settings.server(name), local=settings.local)
    try:
        seconds = node.echo()
    finally:
        node.close()
    console.print(f"{name}: ok ({seconds * 1000:.0f} ms)")


@auth_app.command("set")
@handle_errors
def auth_set(
    user: Annotated[str, typer.Option("--user", help="Global DICOMweb user.")] = "",
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin.")] = False,
    token_stdin: Annotated[bool, typer.Option(help="Read a bearer token from stdin.")] = False,
) -> None:
    """Set global credentials, used by the servers that opt in (--use-global-auth)."""
    settings = Settings.load()
    creds = replace(settings.credentials, username=user or settings.credentials.username)
    if password_stdin:
        creds = replace(creds, password=_read_secret(True, "password"))
    if token_stdin:
        creds = replace(creds, token=_read_secret(True, "token"))
    path = settings.with_credentials(creds).save()
    console.print(f"saved global credentials in {path} (mode 0600)")


@auth_app.command("clear")
@handle_errors
def auth_clear() -> None:
    """Forget the global credentials."""
    Settings.load().with_credentials(Credentials()).save()
    console.print("global credentials cleared")


@auth_app.command("show")
@handle_errors
def auth_show() -> None:
    """Show which global credentials are set (never their values)."""
    creds = Settings.load().credentials
    console.print(
        f"user: {creds.username or '(none)'}; password: "
        f"{'set' if creds.password else 'not set'}; token: "
        f"{'set' if creds.token else 'not set'}"
    )


def register(app: typer.Typer) -> None:
    """Add the ``server`` and ``auth`` groups."""
    app.add_typer(server_app, name="server")
    app.add_typer(auth_app, name="auth")
