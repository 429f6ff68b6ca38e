"""``dicomstation auth login / logout SERVER`` and ``auth show SERVER``: OpenID Connect sign-in.

Registered into the ``auth`` group by ``settings_cmds``. Authlib is imported
only when one of these commands runs. Instructions (the URL to open, the user
code) go to stderr; no token is ever printed.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Annotated

import typer

from dicomstation.cli.common import console, handle_errors
from dicomstation.errors import UsageError

if TYPE_CHECKING:  # imported where used: `auth --help` imports none of them
    from dicomstation.auth_oidc import OidcConfig, TokenVault
    from dicomstation.auth_oidc.login import DevicePrompt
    from dicomstation.config import ServerConfig
    from dicomstation.settings import Settings

__all__ = ["forget_tokens", "oidc_servers", "register", "show_sign_in"]

ServerArg = Annotated[str, typer.Argument(help="The server (with --oidc-issuer) to sign in to.")]


def _oidc_server(name: str) -> tuple[OidcConfig, TokenVault]:
    from dicomstation.auth import tls_verify
    from dicomstation.auth_oidc import OidcConfig, vault_for
    from dicomstation.config import DicomWebServer
    from dicomstation.settings import Settings

    server = Settings.load().server(name)
    if not isinstance(server, DicomWebServer) or not server.credentials.issuer:
        raise UsageError(
            f"server {name!r} has no OIDC issuer "
            f"(server edit {name} --oidc-issuer URL --oidc-client-id ID)"
        )
    config = OidcConfig.for_server(server, tls_verify(server))
    return config, vault_for(server, config)


def _open_browser(url: str, *, browser: bool) -> None:
    typer.echo("Open this URL to sign in (waiting for the browser's answer):", err=True)
    typer.echo(url, err=True)
    if browser:
        _launch(url)


def _launch(url: str) -> None:
    """Open ``url`` in a graphical browser; never a console one (it would take the terminal)."""
    import webbrowser

    try:
        found = webbrowser.get()
    except webbrowser.Error:
        found = None
    console_only = isinstance(found, webbrowser.GenericBrowser) and not isinstance(
        found, webbrowser.BackgroundBrowser
    )
    if found is None or console_only or not found.open(url):
        typer.echo(
            "(no browser opened: open the URL in a browser on this machine, or use --device)",
            err=True,
        )


def _show_device(prompt: DevicePrompt) -> None:
    typer.echo(f"On any device, open {prompt.verification_uri}", err=True)
    typer.echo(f"and enter the code {prompt.user_code}", err=True)
    if prompt.verification_uri_complete:
        typer.echo(f"(or open {prompt.verification_uri_complete})", err=True)
    typer.echo(f"The code expires in {prompt.expires_in / 60:.0f} min; waiting...", err=True)


def _when(epoch: float) -> str:
    left = epoch - time.time()
    stamp = dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{stamp} (in {left:.0f} s)" if left > 0 else f"{stamp} (expired)"


@handle_errors
def auth_login(
    name: ServerArg,
    device: Annotated[
        bool, typer.Option("--device", help="Device flow: sign in on another device (headless).")
    ] = False,
    browser: Annotated[
        bool, typer.Option("--browser/--no-browser", help="Open the URL in a browser.")
    ] = True,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the browser's answer.")
    ] = 300.0,
) -> None:
    """Sign in to an OIDC server: a browser (code + PKCE), or --device for a headless machine.

    The refresh token and access token are kept in the OS keyring (else a 0600
    file beside the settings), bound to the issuer and the server's URL.
    """
    from dicomstation.auth_oidc.login import login_browser, login_device

    config, vault = _oidc_server(name)
    if device:
        tokens = login_device(config, _show_device)
    else:
        tokens = login_browser(
            config, lambda url: _open_browser(url, browser=browser), timeout=timeout
        )
    vault.save(tokens)
    refresh = "a refresh token" if tokens.refresh_token else "no refresh token"
    console.print(
        f"signed in to {name}: access token valid until {_when(tokens.expires_at)}, "
        f"{refresh}; kept in {vault.store.where}",
        soft_wrap=True,
    )


@handle_errors
def auth_logout(name: ServerArg) -> None:
    """Sign out of an OIDC server: revoke the refresh token (if the provider can), forget it."""
    config, vault = _oidc_server(name)
    tokens = vault.load()
    note = ""
    if tokens is not None and tokens.refresh_token:
        note = _revoke(config, tokens.refresh_token.reveal())
    vault.clear()
    console.print(f"signed out of {name}{note}", soft_wrap=True)


def _revoke(config: OidcConfig, refresh_token: str) -> str:
    """Revoke at the provider (RFC 7009) when it offers it; a failure is only reported."""
    from dicomstation.auth_oidc.provider import authlib, discover, oauth_client
    from dicomstation.errors import DicomStationError

    _, oauth_error = authlib()
    try:
        meta = discover(config)
        if not meta.revocation_endpoint:
            return " (the provider offers no revocation: the token was only forgotten here)"
        with oauth_client(config, meta) as client:
            answer = client.revoke_token(
                meta.revocation_endpoint, refresh_token, token_type_hint="refresh_token"
            )
        if answer.status_code != 200:
            return f" (revocation answered HTTP {answer.status_code}; forgotten here)"
    except (DicomStationError, oauth_error) as exc:
        return f" (not revoked at the provider: {exc}; forgotten here)"
    return " (refresh token revoked at the provider)"


def oidc_servers(settings: Settings) -> list[str]:
    """The names of the configured servers that sign in with OIDC."""
    from dicomstation.config import DicomWebServer

    return sorted(
        name
        for name, server in settings.servers.items()
        if isinstance(server, DicomWebServer) and server.credentials.issuer
    )


def show_sign_in(name: str) -> None:
    """Print the state of ``name``'s OIDC sign-in (expiry, refresh token held; no token)."""
    config, vault = _oidc_server(name)
    state = vault.state()
    head = f"server {name}: OIDC issuer {config.issuer}, client {config.client_id}"
    if not state.signed_in:
        console.print(f"{head}; not signed in (dicomstation auth login {name})", soft_wrap=True)
        return
    refresh = "refresh token held" if state.refreshable else "no refresh token"
    console.print(
        f"{head}; signed in; access token valid until {_when(state.expires_at)}; "
        f"{refresh}; tokens in: {state.where}",
        soft_wrap=True,
    )


def forget_tokens(server: ServerConfig) -> None:
    """Forget a (removed) server's OIDC tokens, without asking the provider anything."""
    from dicomstation.config import DicomWebServer

    if not isinstance(server, DicomWebServer) or server.credentials.token_store is None:
        return
    from dicomstation.auth_oidc import OidcConfig, vault_for

    vault_for(server, OidcConfig.for_server(server, True)).clear()


def register(auth_app: typer.Typer) -> None:
    """Add ``login`` and ``logout`` to the ``auth`` group (once)."""
    if any(c.name == "login" for c in auth_app.registered_commands):
        return
    auth_app.command("login")(auth_login)
    auth_app.command("logout")(auth_logout)
