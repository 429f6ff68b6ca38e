"""Configuration values handed to the core (no file or environment access here).

:mod:`dicomstation.settings` reads and writes them; every other module only
receives them. Secrets are wrapped in :class:`Secret` so they never show up in a
``repr``, a log line, an exception or a progress event.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = [
    "Credentials",
    "DicomWebServer",
    "DimseServer",
    "LocalNodeConfig",
    "Protocol",
    "Secret",
    "ServerConfig",
]


class Secret:
    """A string that hides itself from ``str``/``repr``; call :meth:`reveal` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret text (only for building the request that needs it)."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__


class Protocol(enum.StrEnum):
    """How a server is reached."""

    DICOMWEB = "dicomweb"
    DIMSE = "dimse"


@dataclass(frozen=True)
class Credentials:
    """Basic, bearer, or OAuth2 client-credentials secrets for a DICOMweb server.

    Precedence when several are set: ``token`` (static bearer), then OAuth2
    client credentials (``token_url`` + ``client_id``), then Basic.
    """

    username: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    token: Secret = field(default_factory=lambda: Secret(""))
    token_url: str = ""
    client_id: str = ""
    client_secret: Secret = field(default_factory=lambda: Secret(""))
    scope: str = ""

    @property
    def empty(self) -> bool:
        """True when no credential at all is configured."""
        return not (self.username or self.token or self.client_id)


@dataclass(frozen=True)
class DicomWebServer:
    """A DICOMweb server: base URL of the QIDO/WADO/STOW root."""

    name: str
    url: str
    credentials: Credentials = field(default_factory=Credentials)
    verify_tls: bool = True
    ca_bundle: str = ""
    timeout: float = 60.0
    proxy: str = ""

    @property
    def protocol(self) -> Protocol:
        """Always :attr:`Protocol.DICOMWEB`."""
        return Protocol.DICOMWEB


@dataclass(frozen=True)
class DimseServer:
    """A DIMSE peer: called AE title, host and port; our calling AE title."""

    name: str
    ae_title: str
    host: str
    port: int
    calling_ae: str = "DICOMSTATION"
    timeout: float = 30.0
    move_destination: str = ""

    @property
    def protocol(self) -> Protocol:
        """Always :attr:`Protocol.DIMSE`."""
        return Protocol.DIMSE


ServerConfig = DicomWebServer | DimseServer


@dataclass(frozen=True)
class LocalNodeConfig:
    """Our own DIMSE identity (listener / C-MOVE destination)."""

    ae_title: str = "DICOMSTATION"
    port: int = 11112
    host: str = "127.0.0.1"
