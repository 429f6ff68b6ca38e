"""Server and credential editing for the web UI (secrets masked, never handed to a new host).

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

from dicomstation.config import Credentials, DicomWebServer, DimseServer, Secret, ServerConfig
from dicomstation.errors import ConfigError
from dicomstation.settings import Settings

__all__ = [
    "LOCAL",
    "auth_state",
    "delete_server",
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
        }
    creds = server.credentials
    return {
        "name": server.name,
        "protocol": "dicomweb",
        "url": server.url,
        "verify_tls": server.verify_tls,
        "username": creds.username,
        "password": _state(creds.password),
        "token": _state(creds.token),
        "client_secret": _state(creds.client_secret),
    }


def _merge_credentials(old: Credentials, body: Mapping[str, Any]) -> Credentials:
    """New credentials from a form: empty secret fields keep the stored secret."""
    clear = set(body.get("clear", ()))
    values: dict[str, Any] = {"username": str(body.get("username", old.username))}
    for key in _SECRETS:
        text = str(body.get(key) or "")
        values[key] = Secret("") if key in clear else Secret(text) if text else getattr(old, key)
    return replace(old, **values)


def server_from_form(name: str, body: Mapping[str, Any], old: ServerConfig | None) -> ServerConfig:
    """Build a server configuration from the settings form (ConfigError when incomplete)."""
    protocol = body.get("protocol", "dicomweb")
    try:
        if protocol == "dimse":
            return DimseServer(
                name=name,
                ae_title=str(body["ae_title"]),
                host=str(body["host"]),
                port=int(body["port"]),
                calling_ae=str(body.get("calling_ae") or "DICOMSTATION"),
            )
        url = str(body["url"]).rstrip("/")
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"server {name!r}: missing or bad field {exc}") from None
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"server {name!r}: the URL must start with http:// or https://")
    creds = old.credentials if isinstance(old, DicomWebServer) else Credentials()
    return DicomWebServer(
        name=name,
        url=url,
        credentials=_merge_credentials(creds, body),
        verify_tls=bool(body.get("verify_tls", True)),
    )


def list_servers(path: Path) -> list[dict[str, Any]]:
    """Every configured server in the settings file at ``path``, secrets masked."""
    settings = Settings.load(path)
    return [public_server(settings.server(n)) for n in sorted(settings.servers)]


def save_server(path: Path, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Add or change a server from the UI form; return it masked."""
    if not name or name == LOCAL or "/" in name:
        raise ConfigError(f"invalid server name {name!r}")
    settings = Settings.load(path)
    server = server_from_form(name, body, settings.servers.get(name))
    settings.with_server(server).save(path)
    return public_server(server)


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
