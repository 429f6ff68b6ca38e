"""Server and credential editing for the web UI (secrets masked, never handed to a new host).

Rules of an edit (``PUT /api/servers/{name}``): a URL moved to another origin
(scheme, host or port) keeps none of the stored secrets, only those given in
the same request; https -> http needs ``allow_insecure_downgrade: true``; a URL
with ``user:password@`` is refused; an OIDC issuer must be https (http on loopback);
fields the form does not carry (CA bundle,
proxy, timeout, limits, C-MOVE destination) keep their stored values; global
credentials reach a server only when it opts in (``use_global_auth``).

:class:`~dicomstation.web.workstation.Workstation` delegates its settings calls
here; settings are re-read on every call and written with
:class:`~dicomstation.settings.Settings` (0600, atomic). Secrets never leave this
module except as ``"set"`` / ``"not set"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from dicomstation.config import (
    Credentials,
    DicomWebServer,
    DimseServer,
    Secret,
    ServerConfig,
    origin_of,
)
from dicomstation.errors import ConfigError
from dicomstation.nodes.http_errors import redact
from dicomstation.settings import Settings, check_url

__all__ = [
    "LOCAL",
    "auth_state",
    "delete_server",
    "flag",
    "list_servers",
    "public_server",
    "save_auth",
    "save_server",
    "server_from_form",
]

LOCAL = "local"
_SECRETS = ("password", "token", "client_secret")


def _state(secret: Secret) -> str:
    return "set" if secret else "not set"


def public_server(server: ServerConfig) -> dict[str, Any]:
    """A server's settings for the browser: secrets only as "set" / "not set"."""
    if isinstance(server, DimseServer):
        return {
            "name": server.name,
            "protocol": "dimse",
            "ae_title": server.ae_title,
            "host": server.host,
            "port": server.port,
            "calling_ae": server.calling_ae,
            "timeout": server.timeout,
            "move_destination": server.move_destination,
        }
    creds = server.credentials
    return {
        "name": server.name,
        "protocol": "dicomweb",
        "url": server.url,
        "verify_tls": server.verify_tls,
        "use_global_auth": server.use_global_auth,
        "ca_bundle": server.ca_bundle,
        "proxy": redact(server.proxy),  # a proxy URL may carry its own user:password@
        "timeout": server.timeout,
        "username": creds.username,
        "password": _state(creds.password),
        "token": _state(creds.token),
        "client_secret": _state(creds.client_secret),
        "issuer": creds.issuer,
        "client_id": creds.client_id,
        "scope": creds.scope,
    }


def _merge_credentials(old: Credentials, body: Mapping[str, Any]) -> Credentials:
    """New credentials from a form: empty secret fields keep the stored secret."""
    clear = set(body.get("clear", ()))
    values: dict[str, Any] = {"username": str(body.get("username", old.username))}
    for key in _SECRETS:
        text = str(body.get(key) or "")
        values[key] = Secret("") if key in clear else Secret(text) if text else getattr(old, key)
    return replace(old, **values)


#: OpenID Connect fields of the form (as ``server add/edit --oidc-*``); '' clears one.
_OIDC_FIELDS = ("issuer", "client_id", "scope")


def _oidc(name: str, creds: Credentials, body: Mapping[str, Any]) -> Credentials:
    """The form's OIDC issuer, client id and scope over ``creds`` (absent fields kept)."""
    values = {key: str(body[key]).strip() for key in _OIDC_FIELDS if body.get(key) is not None}
    issuer = values.get("issuer", creds.issuer)
    if issuer and "issuer" in values:
        from dicomstation.auth_oidc.provider import check_issuer

        issuer = check_issuer(name, issuer)
    return replace(
        creds,
        issuer=issuer,
        client_id=values.get("client_id", creds.client_id),
        scope=values.get("scope", creds.scope),
    )


_TRUE = frozenset({"true", "1", "on", "yes"})
_FALSE = frozenset({"false", "0", "off", "no", ""})


def flag(body: Mapping[str, Any], key: str, default: bool) -> bool:
    """A true/false form field (a JSON bool or its usual spellings); ConfigError otherwise."""
    value = body.get(key, default)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ConfigError(f"{key} must be true or false, not {str(value)[:40]!r}")


def _number(body: Mapping[str, Any], key: str, default: float) -> float:
    value = body.get(key)
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number of seconds, not {str(value)[:40]!r}") from None
    if not number > 0:
        raise ConfigError(f"{key} must be positive, not {number}")
    return number


def _text(body: Mapping[str, Any], key: str, default: str) -> str:
    value = body.get(key)
    return default if value is None else str(value).strip()


def _dimse_from_form(name: str, body: Mapping[str, Any], old: ServerConfig | None) -> DimseServer:
    kept = old if isinstance(old, DimseServer) else DimseServer(name, "", "", 104)
    try:
        return DimseServer(
            name=name,
            ae_title=str(body["ae_title"]),
            host=str(body["host"]),
            port=int(body["port"]),
            calling_ae=str(body.get("calling_ae") or kept.calling_ae),
            timeout=_number(body, "timeout", kept.timeout),
            move_destination=_text(body, "move_destination", kept.move_destination),
        )
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"server {name!r}: missing or bad field {exc}") from None


def server_from_form(name: str, body: Mapping[str, Any], old: ServerConfig | None) -> ServerConfig:
    """Build a server configuration from the settings form (ConfigError when incomplete).

    Settings the form does not carry (CA bundle, proxy, timeout, limits...) are
    kept from ``old``. When the URL moves to another origin, the stored secrets
    are dropped: only secrets given in this form go to the new address.
    """
    if body.get("protocol", "dicomweb") == "dimse":
        return _dimse_from_form(name, body, old)
    if "url" not in body:
        raise ConfigError(f"server {name!r}: missing or bad field 'url'")
    url = check_url(name, str(body["url"]))
    kept = old if isinstance(old, DicomWebServer) else DicomWebServer(name, url)
    creds = kept.credentials
    if kept.origin != origin_of(url):
        creds = creds.without_secrets()  # a new address gets only secrets given again
    return replace(
        kept,
        url=url,
        credentials=_oidc(name, _merge_credentials(creds, body), body),
        verify_tls=flag(body, "verify_tls", kept.verify_tls),
        ca_bundle=_text(body, "ca_bundle", kept.ca_bundle),
        proxy=_text(body, "proxy", kept.proxy),
        timeout=_number(body, "timeout", kept.timeout),
        use_global_auth=flag(body, "use_global_auth", kept.use_global_auth),
    )


def list_servers(path: Path) -> list[dict[str, Any]]:
    """Every configured server in the settings file at ``path``, secrets masked."""
    settings = Settings.load(path)
    return [
        {**public_server(settings.server(n)), "default": n == settings.default_server}
        for n in sorted(settings.servers)
    ]


def save_server(path: Path, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Add or change a server from the UI form; return it masked."""
    if not name or name == LOCAL or "/" in name:
        raise ConfigError(f"invalid server name {name!r}")
    settings = Settings.load(path)
    server = server_from_form(name, body, settings.servers.get(name))
    downgrade = flag(body, "allow_insecure_downgrade", False)
    settings = settings.with_server(server, allow_insecure_downgrade=downgrade)
    if "default" in body:  # "default": true makes it the default server, false unsets it
        is_default = flag(body, "default", False)
        if is_default or settings.default_server == name:
            settings = settings.with_default(name if is_default else "")
    settings.save(path)
    return {**public_server(settings.server(name)), "default": settings.default_server == name}


def delete_server(path: Path, name: str) -> None:
    """Forget a server."""
    Settings.load(path).without_server(name).save(path)


def auth_state(path: Path) -> dict[str, str]:
    """Global DICOMweb credentials, masked."""
    creds = Settings.load(path).credentials
    return {
        "username": creds.username,
        "password": _state(creds.password),
        "token": _state(creds.token),
    }


def save_auth(path: Path, body: Mapping[str, Any]) -> dict[str, str]:
    """Change the global credentials (empty secrets kept)."""
    settings = Settings.load(path)
    settings.with_credentials(_merge_credentials(settings.credentials, body)).save(path)
    return auth_state(path)
