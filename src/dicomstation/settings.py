"""Settings: named servers, global and per-server credentials, TLS; a 0600 TOML file.

This is the only module that reads the environment or the settings file. The
file lives in the user config dir (``DICOMSTATION_CONFIG`` overrides the path)
and is always written with mode 0600 through a temporary file + rename, so a
crash never leaves a half-written or world-readable file; a symlinked path is
written through (the link's target is replaced, the link stays). Secrets are kept
as :class:`~dicomstation.config.Secret` and never printed. A value of the wrong
type gives a one-line :class:`ConfigError` naming the file and the key.

Credentials are bound to an origin (scheme, host, port): a server's secrets are
used only while its URL has the origin they were entered for (the ``origin``
key; a file written before that key existed binds them to the URL it has). A
URL carrying ``user:password@`` is refused: give the user and password as
their own keys (``server add --user ... --password-stdin``).

Example file::

    [auth]                      # global DICOMweb credentials, used only by servers
    username = "alice"          # that opt in with use_global_auth = true
    password = "..."

    [servers.orthanc]
    protocol = "dicomweb"
    url = "https://pacs.example.org/dicom-web"
    verify_tls = true
    ca_bundle = "/etc/ssl/hospital-ca.pem"
    token = "..."               # this server's own bearer token
    origin = "https://pacs.example.org:443"   # where its secrets may be sent (written by us)

    [servers.orthanc.limits]    # optional; see config.ClientLimits
    max_qido_bytes = 67108864
    max_retry_after = 30.0

    [servers.other]
    protocol = "dicomweb"
    url = "https://other.example.org/dicom-web"
    use_global_auth = true      # sends the [auth] credentials (to this origin only)

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

import logging
import os
import tempfile
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dicomstation.config import (
    Credentials,
    DicomWebServer,
    LocalNodeConfig,
    Secret,
    ServerConfig,
)
from dicomstation.errors import ConfigError
from dicomstation.secret_store import (
    FileStore,
    SecretStore,
    fill,
    keyring_store,
    referenced,
    referenced_in_file,
    stash,
)
from dicomstation.settings_tables import (
    Table,
    check_url,
    credentials,
    credentials_table,
    server_from_table,
    server_table,
)

__all__ = [
    "Settings",
    "check_url",
    "default_database_path",
    "secret_store",
    "settings_path",
    "token_store",
]

log = logging.getLogger(__name__)


def settings_path() -> Path:
    """Path of the settings file (``$DICOMSTATION_CONFIG`` or the user config dir)."""
    override = os.environ.get("DICOMSTATION_CONFIG")
    if override:
        return Path(override).expanduser()
    import platformdirs  # only without the override

    return Path(platformdirs.user_config_dir("dicomstation")) / "settings.toml"


def default_database_path() -> Path:
    """Default local database folder (``$DICOMSTATION_DB`` or the user data dir)."""
    override = os.environ.get("DICOMSTATION_DB")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("dicomstation")) / "database"


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as TOML at ``path`` (a symlink's target), 0600, atomically."""
    import tomli_w  # writing only: reading the settings does not import it

    target = Path(os.path.realpath(path))
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".settings-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            tomli_w.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Settings:
    """Everything the user configured once and every command reuses."""

    servers: dict[str, ServerConfig] = field(default_factory=dict)
    credentials: Credentials = field(default_factory=Credentials)
    local: LocalNodeConfig = field(default_factory=LocalNodeConfig)
    database: str = ""
    #: The server used when a command names none (``server add/edit --default``).
    default_server: str = ""
    #: De-identification project key (``[deid] key``); a Secret, never printed.
    deid_key: Secret = field(default_factory=lambda: Secret(""), repr=False)
    #: The file these settings were read from (where OIDC tokens are kept beside).
    source: Path | None = field(default=None, compare=False, repr=False)

    @classmethod
    def load(cls, path: Path | None = None, store: SecretStore | str | None = "auto") -> Settings:
        """Read the settings file (an absent file gives empty settings).

        ``store`` holds the secrets the file keeps in the keyring: ``"auto"`` is
        the OS keyring when a backend exists (:func:`secret_store`), None none.

        Raises
        ------
        ConfigError
            One line naming the file and the key, for unreadable TOML or a value
            of the wrong type.
        """
        path = path or settings_path()
        if not path.exists():
            return cls()
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read settings {path}: {exc}") from None
        if referenced(data):  # the keyring is asked only when the file points to it
            fill(data, secret_store(path) if store == "auto" else _store(store), path)
        root = Table(data, "", path)
        servers = root.sub("servers")
        local = root.sub("local")
        return cls(
            servers={n: server_from_table(n, servers.server(n)) for n in servers.data},
            credentials=credentials(root.sub("auth")),
            local=LocalNodeConfig(
                ae_title=local.get("ae_title", str, "DICOMSTATION"),
                port=local.get("port", int, 11112),
                host=local.get("host", str, "127.0.0.1"),
            ),
            database=local.get("database", str, ""),
            default_server=root.get("default_server", str, ""),
            deid_key=Secret(root.sub("deid").get("key", str, "")),
            source=path,
        )

    def save(self, path: Path | None = None, store: SecretStore | str | None = "auto") -> Path:
        """Write the file atomically with mode 0600; return its path.

        Secrets go to ``store`` (``"auto"``: the OS keyring when a backend exists)
        and the file lists which; without a store they stay in the file. A
        symlinked ``path`` stays a link: its target is the file replaced.
        """
        path = path or settings_path()
        local: dict[str, Any] = {
            "ae_title": self.local.ae_title,
            "port": self.local.port,
            "host": self.local.host,
        }
        if self.database:
            local["database"] = self.database
        data: dict[str, Any] = {
            "auth": credentials_table(self.credentials),
            "local": local,
            "servers": {n: server_table(s) for n, s in sorted(self.servers.items())},
        }
        if self.default_server:
            data["default_server"] = self.default_server
        if self.deid_key:
            data["deid"] = {"key": self.deid_key.reveal()}
        has_secret = self.deid_key or any(
            c.has_secret for c in (self.credentials, *self._server_credentials())
        )
        chosen = None
        if has_secret or referenced_in_file(path):
            chosen = secret_store(path) if store == "auto" else _store(store)
        if chosen is None:
            _write_private(path, data)
            return path
        before = referenced_in_file(path)
        written = stash(data, chosen)  # the keyring first: the file never names a missing entry
        _write_private(path, data)
        for entry in before - written:
            chosen.delete(entry)
        return path

    def _server_credentials(self) -> list[Credentials]:
        return [s.credentials for s in self.servers.values() if isinstance(s, DicomWebServer)]

    def server(self, name: str) -> ServerConfig:
        """The named server, with the credentials it may use at its current origin.

        Its own credentials are used only while they are bound to its URL's
        origin; the global credentials only when it opts in (``use_global_auth``)
        and has none of its own, bound to its origin.

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
        if not isinstance(server, DicomWebServer):
            return server
        creds = server.credentials
        if not creds.empty and creds.origin != server.origin:
            log.warning(
                "server %s: its credentials were entered for %s, not sent to %s",
                name,
                creds.origin or "another address",
                server.origin,
            )
            creds = Credentials()
        if creds.empty and server.use_global_auth:
            creds = replace(self.credentials, origin=server.origin)
        if creds.issuer:  # OpenID Connect: its tokens' store (keyring, else a 0600 file)
            creds = replace(creds, token_store=token_store(self.source))
        return replace(server, credentials=creds)

    def with_server(
        self, server: ServerConfig, *, allow_insecure_downgrade: bool = False
    ) -> Settings:
        """A copy with ``server`` added or replaced.

        Credentials without an origin are bound to the server's origin; credentials
        bound to another origin lose their secrets (a changed URL needs them again).

        Raises
        ------
        ConfigError
            When an https server would become http without ``allow_insecure_downgrade``.
        """
        if isinstance(server, DicomWebServer):
            old = self.servers.get(server.name)
            if (
                isinstance(old, DicomWebServer)
                and old.origin.startswith("https:")
                and server.origin.startswith("http:")
                and not allow_insecure_downgrade
            ):
                raise ConfigError(
                    f"server {server.name!r}: changing https to http sends its data and "
                    "credentials unencrypted; confirm it explicitly (--allow-http, or "
                    "allow_insecure_downgrade in the UI API)"
                )
            server = replace(server, credentials=_bind(server.credentials, server.origin))
        return replace(self, servers={**self.servers, server.name: server})

    def without_server(self, name: str) -> Settings:
        """A copy without the named server. Raises ConfigError if unknown."""
        self.server(name)
        default = "" if self.default_server == name else self.default_server
        servers = {k: v for k, v in self.servers.items() if k != name}
        return replace(self, servers=servers, default_server=default)

    def with_default(self, name: str) -> Settings:
        """A copy whose default server is ``name`` ('' for none). Raises ConfigError if unknown."""
        if name:
            self.server(name)
        return replace(self, default_server=name)

    def server_name(self, name: str | None) -> str:
        """``name``, or the default server when none is given.

        Raises
        ------
        ConfigError
            When no name is given and no default server is set.
        """
        if name:
            return name
        if not self.default_server:
            raise ConfigError("no server named and no default server (server edit NAME --default)")
        return self.default_server

    def with_credentials(self, credentials: Credentials) -> Settings:
        """A copy with new global credentials (bound to no origin until a server opts in)."""
        return replace(self, credentials=replace(credentials, origin=""))


def secret_store(path: Path | None = None) -> SecretStore | None:
    """The OS keyring for the settings file at ``path``, or None (secrets in the file).

    A backend is used when keyring has a real one (priority >= 1: Secret Service,
    macOS Keychain, Windows Credential Locker, KWallet) or when the user named one
    in ``PYTHON_KEYRING_BACKEND``; ``DICOMSTATION_KEYRING=file`` turns it off.
    """
    return keyring_store(path or settings_path(), os.environ)


def token_store(path: Path | None = None) -> SecretStore:
    """Where OpenID Connect tokens of the settings at ``path`` are kept.

    The OS keyring when :func:`secret_store` has one, else ``<name>.tokens.json``
    beside the settings file (mode 0600): tokens change while a fetch runs, so
    they are never written into the settings file itself.
    """
    path = path or settings_path()
    store = secret_store(path)
    if store is not None:
        return store
    return FileStore(Path(os.path.realpath(path)).with_suffix(".tokens.json"))


def _store(store: SecretStore | str | None) -> SecretStore | None:
    if isinstance(store, str):
        raise ValueError(f"store must be a SecretStore, None or 'auto', not {store!r}")
    return store


def _bind(creds: Credentials, origin: str) -> Credentials:
    """``creds`` bound to ``origin``; secrets entered for another origin are dropped."""
    if creds.origin in ("", origin):
        return replace(creds, origin=origin)
    if creds.has_secret:
        log.warning(
            "credentials entered for %s dropped: the server is now %s", creds.origin, origin
        )
    return replace(creds.without_secrets(), origin=origin)
