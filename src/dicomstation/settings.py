"""Settings: named servers, global and per-server credentials, TLS; a 0600 TOML file.

This is the only module that reads the environment or the settings file. The
file lives in the user config dir (``DICOMSTATION_CONFIG`` overrides the path)
and is always written with mode 0600 through a temporary file + rename, so a
crash never leaves a half-written or world-readable file. Secrets are kept as
:class:`~dicomstation.config.Secret` and never printed.

Example file::

    [auth]                      # global DICOMweb credentials, used by every server
    username = "alice"          # that has none of its own (Slicer's GLOBAL_DICOMWEB_USER)
    password = "..."

    [servers.orthanc]
    protocol = "dicomweb"
    url = "https://pacs.example.org/dicom-web"
    verify_tls = true
    ca_bundle = "/etc/ssl/hospital-ca.pem"
    token = "..."               # per-server bearer token overrides the global user

    [servers.legacy]
    protocol = "dimse"
    ae_title = "PACS"
    host = "10.0.0.5"
    port = 104
    calling_ae = "DICOMSTATION"

    [local]
    ae_title = "DICOMSTATION"
    port = 11112
    database = "/data/dicom-db"
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w

from dicomstation.config import (
    Credentials,
    DicomWebServer,
    DimseServer,
    LocalNodeConfig,
    Secret,
    ServerConfig,
)
from dicomstation.errors import ConfigError

__all__ = ["Settings", "default_database_path", "settings_path"]

_SECRET_KEYS = ("password", "token", "client_secret")
_CRED_KEYS = ("username", "password", "token", "token_url", "client_id", "client_secret", "scope")


def settings_path() -> Path:
    """Path of the settings file (``$DICOMSTATION_CONFIG`` or the user config dir)."""
    override = os.environ.get("DICOMSTATION_CONFIG")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir("dicomstation")) / "settings.toml"


def default_database_path() -> Path:
    """Default local database folder (``$DICOMSTATION_DB`` or the user data dir)."""
    override = os.environ.get("DICOMSTATION_DB")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir("dicomstation")) / "database"


def _credentials(table: dict[str, Any]) -> Credentials:
    values = {k: table.get(k, "") for k in _CRED_KEYS}
    for key in _SECRET_KEYS:
        values[key] = Secret(str(values[key]))
    return Credentials(**values)


def _credentials_table(creds: Credentials) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in _CRED_KEYS:
        value = getattr(creds, key)
        text = value.reveal() if isinstance(value, Secret) else str(value)
        if text:
            out[key] = text
    return out


def _server_from_table(name: str, table: dict[str, Any]) -> ServerConfig:
    protocol = table.get("protocol", "dicomweb")
    try:
        if protocol == "dicomweb":
            return DicomWebServer(
                name=name,
                url=str(table["url"]).rstrip("/"),
                credentials=_credentials(table),
                verify_tls=bool(table.get("verify_tls", True)),
                ca_bundle=str(table.get("ca_bundle", "")),
                timeout=float(table.get("timeout", 60.0)),
                proxy=str(table.get("proxy", "")),
            )
        if protocol == "dimse":
            return DimseServer(
                name=name,
                ae_title=str(table["ae_title"]),
                host=str(table["host"]),
                port=int(table["port"]),
                calling_ae=str(table.get("calling_ae", "DICOMSTATION")),
                timeout=float(table.get("timeout", 30.0)),
                move_destination=str(table.get("move_destination", "")),
            )
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"server {name!r} in {settings_path()}: bad or missing {exc}") from None
    raise ConfigError(f"server {name!r}: unknown protocol {protocol!r} (dicomweb or dimse)")


def _server_table(server: ServerConfig) -> dict[str, Any]:
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
        table.update(_credentials_table(server.credentials))
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


@dataclass(frozen=True)
class Settings:
    """Everything the user configured once and every command reuses."""

    servers: dict[str, ServerConfig] = field(default_factory=dict)
    credentials: Credentials = field(default_factory=Credentials)
    local: LocalNodeConfig = field(default_factory=LocalNodeConfig)
    database: str = ""

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        """Read the settings file (an absent file gives empty settings)."""
        path = path or settings_path()
        if not path.exists():
            return cls()
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read settings {path}: {exc}") from None
        servers = {n: _server_from_table(n, t) for n, t in data.get("servers", {}).items()}
        local = data.get("local", {})
        return cls(
            servers=servers,
            credentials=_credentials(data.get("auth", {})),
            local=LocalNodeConfig(
                ae_title=str(local.get("ae_title", "DICOMSTATION")),
                port=int(local.get("port", 11112)),
                host=str(local.get("host", "127.0.0.1")),
            ),
            database=str(local.get("database", "")),
        )

    def save(self, path: Path | None = None) -> Path:
        """Write the file atomically with mode 0600; return its path."""
        path = path or settings_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        local: dict[str, Any] = {
            "ae_title": self.local.ae_title,
            "port": self.local.port,
            "host": self.local.host,
        }
        if self.database:
            local["database"] = self.database
        data = {
            "auth": _credentials_table(self.credentials),
            "local": local,
            "servers": {n: _server_table(s) for n, s in sorted(self.servers.items())},
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".settings-", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                tomli_w.dump(data, handle)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def server(self, name: str) -> ServerConfig:
        """The named server, with global credentials applied when it has none of its own.

        Raises
        ------
        ConfigError
            If no server has that name.
        """
        try:
            server = self.servers[name]
        except KeyError:
            known = ", ".join(sorted(self.servers)) or "none configured"
            raise ConfigError(f"unknown server {name!r} (known: {known})") from None
        if isinstance(server, DicomWebServer) and server.credentials.empty:
            return replace(server, credentials=self.credentials)
        return server

    def with_server(self, server: ServerConfig) -> Settings:
        """A copy with ``server`` added or replaced."""
        return replace(self, servers={**self.servers, server.name: server})

    def without_server(self, name: str) -> Settings:
        """A copy without the named server. Raises ConfigError if unknown."""
        self.server(name)
        return replace(self, servers={k: v for k, v in self.servers.items() if k != name})

    def with_credentials(self, credentials: Credentials) -> Settings:
        """A copy with new global credentials."""
        return replace(self, credentials=credentials)
