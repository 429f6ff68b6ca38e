"""Configuration values handed to the core (no file or environment access here).

:mod:`dicomstation.settings` reads and writes them; every other module only
receives them. Secrets are wrapped in :class:`Secret` so they never show up in a
``repr``, a log line, an exception or a progress event.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from dicomstation.secret_store import SecretStore

__all__ = [
    "ClientLimits",
    "Credentials",
    "DicomWebServer",
    "DimseServer",
    "LocalNodeConfig",
    "Protocol",
    "Secret",
    "ServerConfig",
    "is_loopback",
    "origin_of",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback(host: str) -> bool:
    """True when ``host`` (a name or an IP literal, brackets allowed) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def origin_of(url: str) -> str:
    """The origin (``scheme://host:port``, RFC 6454) of a URL, normalised; '' if it has none.

    Credentials are bound to this value: a secret entered for one origin is
    never sent to another (another scheme, host or port).
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not scheme or not host:
        return ""
    port = port or _DEFAULT_PORTS.get(scheme, 0)
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


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
    ``origin`` is the origin (see :func:`origin_of`) the secrets were entered
    for; they are sent to that origin only ('' for the global credentials, which
    are bound to a server's origin when a server opts in to them).
    ``issuer`` (with ``client_id``, optional ``client_secret`` and ``scope``) is an
    OpenID Connect provider the user signs in to (``auth login``); its tokens live
    in ``token_store`` (the OS keyring or a 0600 file), never in these fields.
    """

    username: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    token: Secret = field(default_factory=lambda: Secret(""))
    token_url: str = ""
    client_id: str = ""
    client_secret: Secret = field(default_factory=lambda: Secret(""))
    scope: str = ""
    origin: str = ""
    issuer: str = ""
    token_store: SecretStore | None = field(default=None, compare=False, repr=False)

    @property
    def empty(self) -> bool:
        """True when no credential at all is configured."""
        return not (self.username or self.token or self.client_id)

    @property
    def has_secret(self) -> bool:
        """True when a password, token or client secret is set."""
        return bool(self.password or self.token or self.client_secret)

    def without_secrets(self) -> Credentials:
        """The same non-secret fields (user, client id...), every secret dropped."""
        return Credentials(
            username=self.username,
            token_url=self.token_url,
            client_id=self.client_id,
            scope=self.scope,
            issuer=self.issuer,
        )


@dataclass(frozen=True)
class ClientLimits:
    """Bounds on what a DICOMweb server can make the client do (all configurable).

    Parameters
    ----------
    max_qido_bytes : int
        Largest JSON answer read (QIDO-RS page, WADO-RS metadata); a larger
        one is refused while it streams in, never held whole.
    max_qido_results : int
        Most distinct results one query may bring (a query without ``limit``
        that would bring more is refused: narrow it or give a limit).
    max_qido_requests : int
        Most QIDO-RS requests (pages) one query may send.
    max_retry_after : float
        Longest ``Retry-After`` (seconds) honoured; a server asking for more is
        not retried.
    max_instance_bytes : int
        Largest fetched instance (or frame / rendered image); larger ones are
        refused as they stream in.
    """

    max_qido_bytes: int = 64 << 20
    max_qido_results: int = 50_000
    max_qido_requests: int = 1_000
    max_retry_after: float = 30.0
    max_instance_bytes: int = 8 << 30

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{item.name} must be a positive number, not {value!r}")


@dataclass(frozen=True)
class DicomWebServer:
    """A DICOMweb server: base URL of the QIDO/WADO/STOW root.

    ``credentials`` are used only while their ``origin`` is this URL's origin;
    ``use_global_auth`` lets a server without credentials of its own use the
    global ones (off by default: global secrets go only where the user said).
    """

    name: str
    url: str
    credentials: Credentials = field(default_factory=Credentials)
    verify_tls: bool = True
    ca_bundle: str = ""
    timeout: float = 60.0
    proxy: str = ""
    use_global_auth: bool = False
    limits: ClientLimits = field(default_factory=ClientLimits)

    @property
    def origin(self) -> str:
        """The origin of :attr:`url` (see :func:`origin_of`)."""
        return origin_of(self.url)

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
