"""``dicomstation server ...`` and ``dicomstation auth ...``: configure once, reuse everywhere.

The settings, their config classes and the option handling (``server_options``) are
imported by the commands that use them: ``server --help``, ``auth set --help`` and the
like import this module and typer only (tests/cli/test_startup_imports.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from dicomstation.cli.common import ExitCode, console, handle_errors, print_json
from dicomstation.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from dicomstation.cli.server_options import ServerEdits
    from dicomstation.config import DicomWebServer, Secret, ServerConfig

server_app = typer.Typer(help="Configure remote DICOMweb and DIMSE servers.", no_args_is_help=True)
auth_app = typer.Typer(
    help="Global DICOMweb credentials (--use-global-auth servers); OIDC login/logout/show.",
    no_args_is_help=True,
)


def _read_secret(from_stdin: bool, what: str) -> Secret:
    from dicomstation.config import Secret

    if not from_stdin:
        return Secret("")
    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise ConfigError(f"no {what} on standard input")
    return Secret(value)


UrlOpt = Annotated[str | None, typer.Option("--url", help="DICOMweb root URL.")]
AeOpt = Annotated[str | None, typer.Option("--ae", help="Called AE title (DIMSE).")]
HostOpt = Annotated[str | None, typer.Option("--host", help="Host (DIMSE).")]
PortOpt = Annotated[int | None, typer.Option("--port", help="Port (DIMSE; new: 104).")]
CallingOpt = Annotated[
    str | None, typer.Option("--calling-ae", help="Our AE title (DIMSE; new: DICOMSTATION).")
]
MoveOpt = Annotated[
    str | None,
    typer.Option(
        "--move-destination", help="C-MOVE destination AE (DIMSE; '' for C-GET, the default)."
    ),
]
TimeoutOpt = Annotated[
    float | None, typer.Option("--timeout", help="Seconds (new: 60 DICOMweb, 30 DIMSE).")
]
UserOpt = Annotated[str | None, typer.Option("--user", help="Basic auth user (DICOMweb).")]
PasswordOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from stdin.")
]
TokenOpt = Annotated[bool, typer.Option("--token-stdin", help="Read a bearer token from stdin.")]
VerifyOpt = Annotated[
    bool | None,
    typer.Option("--verify/--no-verify", help="TLS certificate verification (new: on)."),
]
CaOpt = Annotated[str | None, typer.Option("--ca-bundle", help="CA bundle (PEM) for TLS.")]
ProxyOpt = Annotated[str | None, typer.Option("--proxy", help="HTTP(S) proxy URL.")]
GlobalOpt = Annotated[
    bool | None,
    typer.Option(
        "--use-global-auth/--no-global-auth",
        help="Send the global credentials (auth set) to this server.",
    ),
]
DefaultOpt = Annotated[bool, typer.Option("--default", help="Make it the default server.")]
IssuerOpt = Annotated[
    str | None,
    typer.Option("--oidc-issuer", help="OpenID Connect issuer URL (sign in with auth login)."),
]
ClientIdOpt = Annotated[str | None, typer.Option("--oidc-client-id", help="OIDC client id.")]
ClientSecretOpt = Annotated[
    bool,
    typer.Option("--oidc-client-secret-stdin", help="Read an OIDC client secret from stdin."),
]
ScopeOpt = Annotated[
    str | None, typer.Option("--oidc-scope", help="OIDC scopes, space-separated (new: openid).")
]
HttpOpt = Annotated[
    bool, typer.Option("--allow-http", help="Confirm replacing an https URL by http.")
]


def _password(user: str | None, from_stdin: bool, stored: bool) -> Secret | None:
    """The password given: from stdin, or prompted (hidden) on a terminal for a new user."""
    from dicomstation.config import Secret

    if from_stdin:
        return _read_secret(True, "password")
    if not user or stored:
        return None
    if not sys.stdin.isatty():
        raise UsageError(f"--user {user}: no password; give --password-stdin")
    return Secret(typer.prompt(f"password for {user}", hide_input=True))


def _save(
    name: str, edits: ServerEdits, old: ServerConfig | None, flags: tuple[bool, bool]
) -> None:
    from dicomstation.cli.server_options import apply_edits
    from dicomstation.settings import Settings

    make_default, allow_http = flags
    settings = Settings.load()
    server = apply_edits(name, edits, old)
    settings = settings.with_server(server, allow_insecure_downgrade=allow_http)
    if make_default:
        settings = settings.with_default(name)
    path = settings.save()
    note = ", the default" if settings.default_server == name else ""
    console.print(f"saved server [bold]{name}[/] ({server.protocol.value}{note}) in {path}")


def _server_command(editing: bool) -> Callable[..., None]:
    """``server add`` (``editing`` False: a new or replaced server) or ``server edit``."""

    def command(
        name: str,
        url: UrlOpt = None,
        ae_title: AeOpt = None,
        host: HostOpt = None,
        port: PortOpt = None,
        calling_ae: CallingOpt = None,
        move_destination: MoveOpt = None,
        timeout: TimeoutOpt = None,
        username: UserOpt = None,
        password_stdin: PasswordOpt = False,
        token_stdin: TokenOpt = False,
        verify: VerifyOpt = None,
        ca_bundle: CaOpt = None,
        proxy: ProxyOpt = None,
        use_global_auth: GlobalOpt = None,
        make_default: DefaultOpt = False,
        allow_http: HttpOpt = False,
        oidc_issuer: IssuerOpt = None,
        oidc_client_id: ClientIdOpt = None,
        oidc_client_secret_stdin: ClientSecretOpt = False,
        oidc_scope: ScopeOpt = None,
    ) -> None:
        from dicomstation.cli.server_options import ServerEdits
        from dicomstation.config import DicomWebServer
        from dicomstation.settings import Settings

        settings = Settings.load()
        usable = settings.server(name) if editing else None  # ConfigError names a missing one
        stored = isinstance(usable, DicomWebServer) and bool(usable.credentials.password)
        old = settings.servers[name] if editing else None  # its own settings, as stored
        edits = ServerEdits(
            url, ae_title, host, port, calling_ae, move_destination, timeout, username,
            _password(username, password_stdin, stored=stored),
            _read_secret(True, "token") if token_stdin else None,
            verify, ca_bundle, proxy, use_global_auth,
            oidc_issuer=oidc_issuer, oidc_client_id=oidc_client_id, oidc_scope=oidc_scope,
            oidc_client_secret=(
                _read_secret(True, "client secret") if oidc_client_secret_stdin else None
            ),
        )  # fmt: skip
        _save(name, edits, old, (make_default, allow_http))

    return command


server_add = server_app.command(
    "add",
    help="""Add or replace a server: --url for DICOMweb, --ae/--host/--port for DIMSE.

    A URL with 'user:password@' is refused (give --user; the password is prompted
    on a terminal, or read with --password-stdin); secrets are bound to the URL's
    origin. 'server edit' changes some options and keeps the others.
    """,
)(handle_errors(_server_command(editing=False)))
server_edit = server_app.command(
    "edit",
    help="""Change some options of a server; every option not given keeps its value.

    A new URL at another origin keeps no stored secret: give it again.
    """,
)(handle_errors(_server_command(editing=True)))


def _auth_label(server: DicomWebServer) -> str:
    creds = server.credentials
    if creds.token:
        return "token"
    if creds.issuer:
        return f"oidc {creds.client_id} at {creds.issuer}"
    if creds.client_id:
        return f"oauth2 client {creds.client_id}"
    if creds.username:
        return f"user {creds.username}"
    return "global" if server.use_global_auth else "none"


@server_app.command("list")
@handle_errors
def server_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List configured servers (secrets are never shown, only whether they are set)."""
    from dicomstation.config import DicomWebServer
    from dicomstation.settings import Settings

    # Settings.load refuses a URL with user:password@ (settings_tables.check_url): the
    # addresses are printed as they are (no httpx-importing redaction needed).
    settings = Settings.load()
    rows = []
    for name in sorted(settings.servers):
        s = settings.servers[name]
        if isinstance(s, DicomWebServer):
            rows.append(
                {
                    "name": name,
                    "protocol": "dicomweb",
                    "address": s.url,
                    "auth": _auth_label(s),
                    "tls_verify": s.verify_tls,
                    "timeout": s.timeout,
                    "move_destination": None,
                    "default": name == settings.default_server,
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
                    "timeout": s.timeout,
                    "move_destination": s.move_destination or "(C-GET)",
                    "default": name == settings.default_server,
                }
            )
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("no servers configured (dicomstation server add NAME --url URL)")
        return
    from rich.table import Table

    table = Table("Name", "Protocol", "Address", "Auth", "TLS verify", "Timeout", "C-MOVE to", "")
    for row in rows:
        cells = [str("" if v is None else v) for v in list(row.values())[:-1]]
        table.add_row(*cells, "default" if row["default"] else "")
    console.print(table)


@server_app.command("remove")
@handle_errors
def server_remove(name: str) -> None:
    """Remove a configured server (and forget its OIDC tokens, if it had any)."""
    from dicomstation.settings import Settings

    settings = Settings.load()
    settings.without_server(name).save()
    from dicomstation.cli.oidc_login import forget_tokens

    forget_tokens(settings.server(name))
    console.print(f"removed server {name}")


NameArg = Annotated[str | None, typer.Argument(help="Server name (default: the default server).")]


@server_app.command("echo")
@handle_errors
def server_echo(name: NameArg = None) -> None:
    """Check a server answers (C-ECHO for DIMSE, a small QIDO-RS for DICOMweb)."""
    from dicomstation.nodes import open_node
    from dicomstation.settings import Settings

    settings = Settings.load()
    name = settings.server_name(name)
    node = open_node(settings.server(name), local=settings.local)
    try:
        seconds = node.echo()
    finally:
        node.close()
    console.print(f"{name}: ok ({seconds * 1000:.0f} ms)")


@server_app.command("test")
@handle_errors
def server_test(
    name: NameArg = None,
    retrieve: Annotated[
        bool, typer.Option("--retrieve", help="Also retrieve one instance (temporary database).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Try a server: echo, a one-study query and, with --retrieve, a one-instance retrieve.

    Exit code 0 when every check worked, 1 when some did, 3 when none did.
    """
    from dataclasses import asdict

    from rich.markup import escape

    from dicomstation.cli.server_options import test_node
    from dicomstation.nodes import open_node
    from dicomstation.settings import Settings

    settings = Settings.load()
    name = settings.server_name(name)
    node = open_node(settings.server(name), local=settings.local)
    try:
        results = test_node(node, retrieve=retrieve)
    finally:
        node.close()
    if as_json:
        print_json([asdict(r) for r in results])
    for r in results if not as_json else ():
        mark = "[green]ok[/]" if r.ok else "[red]failed[/]"
        console.print(
            f"{name} {r.check}: {mark} {escape(r.detail)} ({r.seconds:.2f}s)", soft_wrap=True
        )
    if not all(r.ok for r in results):
        raise typer.Exit(
            int(ExitCode.PARTLY_FAILED if any(r.ok for r in results) else ExitCode.NOTHING_DONE)
        )


@auth_app.command("set")
@handle_errors
def auth_set(
    user: Annotated[str, typer.Option("--user", help="Global DICOMweb user.")] = "",
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin.")] = False,
    token_stdin: Annotated[bool, typer.Option(help="Read a bearer token from stdin.")] = False,
) -> None:
    """Set global credentials, used by the servers that opt in (--use-global-auth).

    With --user and neither --password-stdin nor --token-stdin, the password is
    prompted (hidden) on a terminal; without a terminal that is an error.
    """
    from dataclasses import replace

    from dicomstation.settings import Settings

    settings = Settings.load()
    creds = replace(settings.credentials, username=user or settings.credentials.username)
    password = _password(user or None, password_stdin, stored=token_stdin)
    if password is not None:
        creds = replace(creds, password=password)
    if token_stdin:
        creds = replace(creds, token=_read_secret(True, "token"))
    path = settings.with_credentials(creds).save()
    console.print(f"saved global credentials ({_where(path)})", soft_wrap=True)


@auth_app.command("clear")
@handle_errors
def auth_clear() -> None:
    """Forget the global credentials."""
    from dicomstation.config import Credentials
    from dicomstation.settings import Settings

    Settings.load().with_credentials(Credentials()).save()
    console.print("global credentials cleared")


@auth_app.command("show")
@handle_errors
def auth_show(
    name: Annotated[
        str | None, typer.Argument(help="An OIDC server: show its sign-in instead.")
    ] = None,
) -> None:
    """Show which global credentials are set and each OIDC server's sign-in (never a secret).

    With a server name: only that server's OIDC sign-in.
    """
    from dicomstation.cli.oidc_login import oidc_servers, show_sign_in
    from dicomstation.settings import Settings, settings_path

    if name is not None:
        return show_sign_in(name)
    settings = Settings.load()
    creds = settings.credentials
    console.print(
        f"user: {creds.username or '(none)'}; password: "
        f"{'set' if creds.password else 'not set'}; token: "
        f"{'set' if creds.token else 'not set'}; secrets in: {_where(settings_path())}",
        soft_wrap=True,
    )
    for server in oidc_servers(settings):
        show_sign_in(server)


def _where(path: Path) -> str:
    from dicomstation.settings import secret_store

    store = secret_store(path)
    if store is None:
        return f"the settings file {path} (mode 0600; no OS keyring backend)"
    return f"{store.where}; settings in {path}"


def register(app: typer.Typer) -> None:
    """Add the ``server`` and ``auth`` groups."""
    from dicomstation.cli import oidc_login  # auth login / logout (Authlib imported on use)

    oidc_login.register(auth_app)
    app.add_typer(server_app, name="server")
    app.add_typer(auth_app, name="auth")
