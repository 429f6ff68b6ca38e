"""Where the settings' secrets live: the OS keyring (``keyring`` package), else the file.

A :class:`KeyringStore` wraps one keyring backend object, passed explicitly:
nothing here calls ``keyring.set_keyring`` or changes keyring's process-wide
default. Entries are named by the settings file they belong to (the service),
and by scope, origin and key (the user name of the entry)::

    service  "dicomstation:/home/ann/.config/dicomstation/settings.toml"
    entry    "server:pacs|https://pacs.example:443|password"

so a secret is found only for the origin it was entered for, and test settings
in a temporary folder never meet the user's own.

:class:`FileStore` is the same interface over a 0600 JSON file, for what must be
kept somewhere even without a keyring (OpenID Connect tokens, which change while
a fetch runs and so are not written into the settings file).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from dicomstation.errors import ConfigError

__all__ = ["FileStore", "KeyringStore", "SecretStore", "entry_name", "keyring_store"]

log = logging.getLogger(__name__)

#: keyring backends below this priority are not a safer place than a 0600 file
#: (keyrings.alt's plaintext file has 0.5, the "fail" backend 0).
MIN_PRIORITY = 1.0


class SecretStore(Protocol):
    """A place for secrets outside the settings file."""

    @property
    def where(self) -> str:
        """Where the secrets are, for ``auth show``."""
        ...

    def get(self, entry: str) -> str | None:
        """The secret of ``entry`` (None when absent)."""
        ...

    def set(self, entry: str, value: str) -> None:
        """Store ``value`` as ``entry``."""
        ...

    def delete(self, entry: str) -> None:
        """Forget ``entry`` (nothing when absent)."""
        ...


def entry_name(scope: str, origin: str, key: str) -> str:
    """The keyring entry of one secret (scope ``server:NAME`` or ``auth``)."""
    return f"{scope}|{origin}|{key}"


@dataclass(frozen=True)
class KeyringStore:
    """Secrets in one keyring backend, under one service name."""

    backend: Any
    service: str

    @property
    def where(self) -> str:
        """``OS keyring (<backend name>)``."""
        name = getattr(self.backend, "name", type(self.backend).__name__)
        return f"OS keyring ({name})"

    def _call(self, what: str, entry: str, *args: str) -> Any:
        from keyring.errors import KeyringError

        try:
            return getattr(self.backend, what)(self.service, entry, *args)
        except KeyringError as exc:
            if what == "delete_password" and type(exc).__name__ == "PasswordDeleteError":
                return None
            raise ConfigError(f"{self.where}: cannot {what.split('_')[0]} {entry}: {exc}") from None

    def get(self, entry: str) -> str | None:
        """The secret of ``entry`` (None when absent)."""
        value = self._call("get_password", entry)
        return None if value is None else str(value)

    def set(self, entry: str, value: str) -> None:
        """Store ``value`` as ``entry``, read back: a backend that keeps nothing is an error."""
        self._call("set_password", entry, value)
        if self._call("get_password", entry) != value:
            raise ConfigError(
                f"{self.where} did not keep {entry.split('|')[0]}'s {entry.rsplit('|')[-1]}; "
                "set DICOMSTATION_KEYRING=file to keep secrets in the settings file (mode 0600)"
            )

    def delete(self, entry: str) -> None:
        """Forget ``entry`` (nothing when absent)."""
        self._call("delete_password", entry)


_FILE_LOCK = threading.Lock()


@dataclass(frozen=True)
class FileStore:
    """Secrets in one JSON file of mode 0600 (folder 0700), replaced atomically.

    A file that others may read (group or world bits) is refused, not used.
    Threads of one process share a lock; processes take ``fcntl.flock`` on a
    lock file beside it, so concurrent writers never lose each other's entries.
    """

    path: Path

    @property
    def where(self) -> str:
        """``the file <path> (mode 0600; no OS keyring backend)``."""
        return f"the file {self.path} (mode 0600; no OS keyring backend)"

    def _read(self) -> dict[str, str]:
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            return {}
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"{self.path} can be read by others (mode {stat.S_IMODE(mode):o}); "
                f"run chmod 600 {self.path}"
            )
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"cannot read {self.path}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{self.path} is not a JSON object")
        return {str(k): str(v) for k, v in data.items()}

    def _write(self, data: dict[str, str]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".secrets-", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _update(self, entry: str, value: str | None) -> None:
        import fcntl

        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with _FILE_LOCK, open(os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)) as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            data = self._read()
            if value is None and entry not in data:
                return
            if value is None:
                del data[entry]
            else:
                data[entry] = value
            self._write(data)

    def get(self, entry: str) -> str | None:
        """The secret of ``entry`` (None when absent)."""
        with _FILE_LOCK:
            return self._read().get(entry)

    def set(self, entry: str, value: str) -> None:
        """Store ``value`` as ``entry``."""
        self._update(entry, value)

    def delete(self, entry: str) -> None:
        """Forget ``entry`` (nothing when absent)."""
        self._update(entry, None)


def _backend(environ: os._Environ[str] | dict[str, str]) -> Any:
    import keyring.core

    named = environ.get("PYTHON_KEYRING_BACKEND", "").strip()
    if named:  # the user chose a backend (keyring's own variable): use it whatever its priority
        from keyring.backends import null

        backend = keyring.core.load_keyring(named)
        # keyring's null backend is how users switch keyring off (poetry's advice): no keyring
        return None if isinstance(backend, null.Keyring) else backend
    backend = keyring.core.get_keyring()  # keyring's own choice; read, never changed
    priority = float(getattr(type(backend), "priority", 0) or 0)
    return backend if priority >= MIN_PRIORITY else None


def keyring_store(
    settings_file: Path, environ: os._Environ[str] | dict[str, str]
) -> KeyringStore | None:
    """The OS keyring for ``settings_file``, or None when no usable backend exists.

    ``DICOMSTATION_KEYRING=0`` (or ``file``) keeps secrets in the settings file.
    """
    if environ.get("DICOMSTATION_KEYRING", "").strip().lower() in ("0", "no", "file", "off"):
        return None
    try:
        backend = _backend(environ)
    except Exception as exc:  # a broken keyring installation: fall back, say why
        log.warning("no usable keyring (%s: %s); secrets stay in the file", type(exc).__name__, exc)
        return None
    if backend is None:
        return None
    return KeyringStore(backend, f"dicomstation:{os.path.realpath(settings_file)}")


SECRET_KEYS = ("password", "token", "client_secret")
#: The key of a credentials table listing which of its secrets are in the keyring.
MARK = "keyring"


def _tables(data: dict[str, Any]) -> list[tuple[str, dict[str, Any], tuple[str, ...]]]:
    """(scope, table, secret keys) of every table of a settings file that may hold secrets."""
    found: list[tuple[str, dict[str, Any], tuple[str, ...]]] = []
    if isinstance(data.get("auth"), dict):
        found.append(("auth", data["auth"], SECRET_KEYS))
    if isinstance(data.get("deid"), dict):
        found.append(("deid", data["deid"], ("key",)))
    servers = data.get("servers")
    for name, table in servers.items() if isinstance(servers, dict) else ():
        if isinstance(table, dict):
            found.append((f"server:{name}", table, SECRET_KEYS))
    return found


def referenced(data: dict[str, Any]) -> set[str]:
    """The keyring entries a settings file (as read) refers to."""
    entries = set()
    for scope, table, keys in _tables(data):
        marked = table.get(MARK)
        for key in marked if isinstance(marked, list) else ():
            if key in keys:
                entries.add(entry_name(scope, str(table.get("origin", "")), str(key)))
    return entries


def referenced_in_file(path: Path) -> set[str]:
    """The keyring entries the settings file at ``path`` refers to (none when unreadable)."""
    import tomllib

    try:
        return referenced(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return set()


def stash(data: dict[str, Any], store: SecretStore) -> set[str]:
    """Move the secrets of ``data`` (a file about to be written) into ``store``.

    Each table keeps only ``keyring = [keys]``; returns the entries written.
    """
    written = set()
    for scope, table, keys in _tables(data):
        moved = []
        for key in keys:
            if table.get(key):
                entry = entry_name(scope, str(table.get("origin", "")), key)
                store.set(entry, str(table.pop(key)))
                moved.append(key)
                written.add(entry)
        if moved:
            table[MARK] = moved
    return written


def fill(data: dict[str, Any], store: SecretStore | None, path: Path) -> None:
    """Put the secrets a file keeps in the keyring back into its tables (as read).

    A secret missing from the keyring (or no keyring now) is left empty, with a
    warning naming the table: never a secret from elsewhere.
    """
    for scope, table, keys in _tables(data):
        marked = table.pop(MARK, None)
        if marked is None:
            continue
        if not isinstance(marked, list) or not all(k in keys for k in marked):
            raise ConfigError(f"settings {path}: {scope}.{MARK} must list some of {keys}")
        for key in marked:
            entry = entry_name(scope, str(table.get("origin", "")), key)
            value = store.get(entry) if store is not None else None
            if value is None:
                log.warning("settings %s: %s %s is not in the keyring", path, scope, key)
                continue
            table[key] = value
