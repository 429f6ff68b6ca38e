"""Typed reading of the settings TOML tables (no file or environment access here).

:mod:`dicomstation.settings` reads the file and hands the parsed tables to these
helpers; every value of the wrong type becomes a one-line
:class:`~dicomstation.errors.ConfigError` naming the file and the key (never a
secret's value).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from dicomstation.config import (
    ClientLimits,
    Credentials,
    DicomWebServer,
    DimseServer,
    Secret,
    ServerConfig,
    origin_of,
)
from dicomstation.errors import ConfigError

__all__ = [
    "Table",
    "check_url",
    "credentials",
    "credentials_table",
    "limits",
    "limits_table",
    "server_from_table",
    "server_table",
]

SECRET_KEYS = ("password", "token", "client_secret")
_CRED_KEYS = (
    *("username", "password", "token", "token_url", "client_id", "client_secret", "scope"),
    "issuer",  # OpenID Connect provider (auth login); its tokens are kept elsewhere
)
T = TypeVar("T")


def check_url(name: str, url: str) -> str:
    """A DICOMweb root URL, checked: http(s), a host, no ``user:password@``; trailing / cut.

    Raises
    ------
    ConfigError
        Naming the server (never the password) when the URL is not usable.
    """
    url = url.strip().rstrip("/")
    if not url.lower().startswith(("http://", "https://")) or not origin_of(url):
        raise ConfigError(f"server {name!r}: the URL must be http:// or https:// with a host")
    if "@" in url.split("://", 1)[1].split("/", 1)[0]:
        raise ConfigError(
            f"server {name!r}: the URL carries a user/password (user:***@host); give them "
            "separately (--user and --password-stdin), not in the URL"
        )
    return url


class Table:
    """One TOML table with typed getters whose errors name the file and the key."""

    _KINDS: Mapping[type, str] = {str: "a string", int: "an integer", float: "a number"}

    def __init__(self, data: object, where: str, path: Path, label: str = "") -> None:
        self.where, self.path, self.label = where, path, label
        if not isinstance(data, dict):
            raise self.error(where or "the file", "must be a table")
        self.data: dict[str, Any] = data

    def error(self, key: str, message: str) -> ConfigError:
        """A ConfigError for ``key`` of this file."""
        return ConfigError(f"settings {self.path}: {self.label}{key} {message}")

    def key(self, key: str) -> str:
        """The dotted name of ``key`` in this table (``servers.pacs.port``)."""
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, kind: type[T], default: T | None = None) -> T:
        """The value of ``key``, which must be of ``kind`` (required when no default)."""
        if key not in self.data:
            if default is None:
                raise self.error(self.key(key), "is missing")
            return default
        value = self.data[key]
        ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            shown = "" if key in SECRET_KEYS else f", not {value!r}"[:80]
            kind_name = self._KINDS.get(kind, "true or false")
            raise self.error(self.key(key), f"must be {kind_name}{shown}")
        return value  # type: ignore[no-any-return]

    def sub(self, key: str) -> Table:
        """The sub-table ``key`` (empty when absent; ConfigError when not a table)."""
        return Table(self.data.get(key, {}), self.key(key), self.path, self.label)

    def server(self, name: str) -> Table:
        """The table of server ``name`` (errors say ``server 'name': key``)."""
        return Table(self.data[name], "", self.path, f"server {name!r}: ")


def credentials(table: Table, url: str = "") -> Credentials:
    values: dict[str, Any] = {k: table.get(k, str, "") for k in _CRED_KEYS}
    for key in SECRET_KEYS:
        values[key] = Secret(values[key])
    # secrets written before origins were recorded are bound to the URL they are kept with
    origin = table.get("origin", str, "") or (origin_of(url) if url else "")
    return Credentials(**values, origin=origin)


def credentials_table(creds: Credentials) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in _CRED_KEYS:
        value = getattr(creds, key)
        text = value.reveal() if isinstance(value, Secret) else str(value)
        if text:
            out[key] = text
    if creds.origin and not creds.empty:
        out["origin"] = creds.origin
    return out


def limits(table: Table) -> ClientLimits:
    values: dict[str, Any] = {}
    for item in fields(ClientLimits):
        kind = float if item.type in (float, "float") else int
        if item.name in table.data:
            values[item.name] = table.get(item.name, kind)
    unknown = sorted(set(table.data) - {f.name for f in fields(ClientLimits)})
    if unknown:
        raise table.error(table.key(unknown[0]), "is not a known limit")
    try:
        return ClientLimits(**values)
    except ValueError as exc:
        raise table.error(table.where, f"has a bad value: {exc}") from None


def limits_table(limits: ClientLimits) -> dict[str, Any]:
    default = ClientLimits()
    return {
        f.name: getattr(limits, f.name)
        for f in fields(ClientLimits)
        if getattr(limits, f.name) != getattr(default, f.name)
    }


def _dicomweb_from_table(name: str, t: Table) -> DicomWebServer:
    try:
        url = check_url(name, t.get("url", str))
    except ConfigError as exc:
        raise t.error(t.key("url"), str(exc).split(": ", 1)[1]) from None
    return DicomWebServer(
        name=name,
        url=url,
        credentials=credentials(t, url),
        verify_tls=t.get("verify_tls", bool, True),
        ca_bundle=t.get("ca_bundle", str, ""),
        timeout=t.get("timeout", float, 60.0),
        proxy=t.get("proxy", str, ""),
        use_global_auth=t.get("use_global_auth", bool, False),
        limits=limits(t.sub("limits")),
    )


def server_from_table(name: str, t: Table) -> ServerConfig:
    """The server of settings table ``[servers.NAME]`` (ConfigError naming a bad key)."""
    protocol = t.get("protocol", str, "dicomweb")
    if protocol == "dicomweb":
        return _dicomweb_from_table(name, t)
    if protocol == "dimse":
        port = t.get("port", int)
        if not 0 < port < 65536:
            raise t.error(t.key("port"), f"must be 1..65535, not {port}")
        return DimseServer(
            name=name,
            ae_title=t.get("ae_title", str),
            host=t.get("host", str),
            port=port,
            calling_ae=t.get("calling_ae", str, "DICOMSTATION"),
            timeout=t.get("timeout", float, 30.0),
            move_destination=t.get("move_destination", str, ""),
        )
    raise t.error(t.key("protocol"), f"must be dicomweb or dimse, not {protocol!r}")


def server_table(server: ServerConfig) -> dict[str, Any]:
    """The settings table of ``server``, secrets as values (``Settings.save`` stashes them)."""
    if isinstance(server, DicomWebServer):
        table: dict[str, Any] = {
            "protocol": "dicomweb",
            "url": server.url,
            "verify_tls": server.verify_tls,
            "timeout": server.timeout,
        }
        if server.ca_bundle:
            table["ca_bundle"] = server.ca_bundle
        if server.proxy:
            table["proxy"] = server.proxy
        if server.use_global_auth:
            table["use_global_auth"] = True
        table.update(credentials_table(server.credentials))
        if limits := limits_table(server.limits):
            table["limits"] = limits
        return table
    return {
        "protocol": "dimse",
        "ae_title": server.ae_title,
        "host": server.host,
        "port": server.port,
        "calling_ae": server.calling_ae,
        "timeout": server.timeout,
        **({"move_destination": server.move_destination} if server.move_destination else {}),
    }
