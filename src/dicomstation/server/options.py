"""Options of the DICOMweb server: where it listens, who may use it, how much it accepts."""

from __future__ import annotations

import base64
import ipaddress
import secrets
from dataclasses import dataclass, field

from dicomstation.config import Secret
from dicomstation.errors import ConfigError

__all__ = ["ServerOptions", "is_loopback"]

GIB = 1024**3


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerOptions:
    """How the DICOMweb server over the local database is exposed.

    Parameters
    ----------
    host : str
        Address to bind; loopback by default. Any other address requires auth.
    port : int
        TCP port (0 lets the caller pick a free one before starting uvicorn).
    username, password : str, Secret
        HTTP Basic credentials; both empty disables Basic.
    token : Secret
        A static bearer token; empty disables bearer auth.
    cors_origins : tuple of str
        Origins allowed by CORS (empty: CORS off, the default).
    max_request_bytes : int
        Largest STOW-RS request body accepted (413 beyond).
    max_parts : int
        Largest number of parts in one STOW-RS request.
    prefix : str
        Path of the DICOMweb root (``/dicom-web``).
    """

    host: str = "127.0.0.1"
    port: int = 8042
    username: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    token: Secret = field(default_factory=lambda: Secret(""))
    cors_origins: tuple[str, ...] = ()
    max_request_bytes: int = 4 * GIB
    max_parts: int = 100_000
    prefix: str = "/dicom-web"

    @property
    def auth_required(self) -> bool:
        """True when Basic or bearer credentials are configured."""
        return bool(self.token) or bool(self.username and self.password)

    def check(self) -> None:
        """Refuse unsafe settings before any socket is opened.

        Raises
        ------
        ConfigError
            When bound beyond loopback without credentials, or limits are not positive.
        """
        if not is_loopback(self.host) and not self.auth_required:
            raise ConfigError(
                f"refusing to serve the database on {self.host}: binding beyond 127.0.0.1 "
                "requires Basic (username + password) or bearer (token) authentication"
            )
        if self.max_request_bytes <= 0 or self.max_parts <= 0:
            raise ConfigError("request limits must be positive")
        if "*" in self.cors_origins and self.auth_required:
            raise ConfigError("CORS origin '*' cannot be combined with authentication")

    def authorized(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header value grants access (constant-time compare)."""
        if not self.auth_required:
            return True
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and self.token:
            return secrets.compare_digest(value.encode(), self.token.reveal().encode())
        if scheme.lower() == "basic" and self.username and self.password:
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            good_user = secrets.compare_digest(user.encode(), self.username.encode())
            good_pw = secrets.compare_digest(password.encode(), self.password.reveal().encode())
            return good_user and good_pw
        return False
