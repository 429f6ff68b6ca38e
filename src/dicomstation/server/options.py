"""Options of the DICOMweb server: where it listens, who may use it, how much it accepts."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from dicomstation.config import Secret, is_loopback
from dicomstation.errors import ConfigError

__all__ = ["ServerOptions", "is_loopback", "new_token"]

GIB = 1024**3
MIB = 1024**2


def new_token() -> Secret:
    """A fresh random token (256 bits, URL-safe), as a per-launch token of the UI."""
    return Secret(secrets.token_urlsafe(32))


@dataclass(frozen=True)
class ServerOptions:
    """How the DICOMweb server (and the UI around it) is exposed.

    Parameters
    ----------
    host : str
        Address to bind; loopback by default. Any other address requires auth.
    port : int
        TCP port (0 lets the caller pick a free one before starting uvicorn).
    username, password : str, Secret
        HTTP Basic credentials; both empty disables Basic.
    token : Secret
        A bearer token: ``Authorization: Bearer <token>`` (or ``token <token>``),
        ``?token=<token>``, or the cookie the UI sets when ``/?token=`` is opened.
        Empty disables token auth. ``dicomstation ui`` generates one per launch.
    cors_origins : tuple of str
        Origins allowed by CORS (empty: CORS off, the default). ``*`` needs auth.
    max_request_bytes : int
        Largest STOW-RS request body accepted (413 beyond).
    max_api_bytes : int
        Largest body of any other request (the UI's JSON API).
    max_parts : int
        Largest number of parts in one STOW-RS request.
    max_results : int
        Most QIDO-RS results in one answer; a larger or absent ``limit`` is
        clamped and the answer carries a Warning header.
    body_timeout : float
        Seconds a request body may stall (no bytes) before the request fails with 408.
    min_upload_rate : int
        Bytes per second a body must average once ``body_timeout`` has passed (408 below).
    max_uploads, max_uploads_per_client : int
        STOW-RS requests in progress at once, in all and from one client address
        (429 beyond). Uploads run on their own threads, never the shared pool.
    tls_cert, tls_key : Path or None
        PEM certificate chain and private key: serve HTTPS instead of HTTP.
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
    max_api_bytes: int = 4 * MIB
    max_parts: int = 100_000
    max_results: int = 100_000
    body_timeout: float = 30.0
    min_upload_rate: int = 4096
    max_uploads: int = 16
    max_uploads_per_client: int = 8
    tls_cert: Path | None = None
    tls_key: Path | None = None
    prefix: str = "/dicom-web"

    @property
    def auth_required(self) -> bool:
        """True when Basic or token credentials are configured."""
        return bool(self.token) or bool(self.username and self.password)

    @property
    def scheme(self) -> str:
        """``https`` with a certificate, else ``http``."""
        return "https" if self.tls_cert else "http"

    def with_launch_token(self) -> ServerOptions:
        """These options with a fresh random token (kept if one is set already)."""
        return self if self.token else replace(self, token=new_token())

    def check(self) -> None:
        """Refuse unsafe or inconsistent settings before any socket is opened.

        Raises
        ------
        ConfigError
            When bound beyond loopback without credentials, CORS ``*`` without a
            token, limits not positive, or an incomplete TLS pair.
        """
        if not is_loopback(self.host) and not self.auth_required:
            raise ConfigError(
                f"refusing to serve the database on {self.host}: binding beyond 127.0.0.1 "
                "requires Basic (username + password) or bearer (token) authentication"
            )
        if "*" in self.cors_origins and not self.token:
            raise ConfigError(
                "refusing CORS origin '*' without a token: any web page could read the "
                "database; name the viewer's origin or keep the token"
            )
        if "*" in self.cors_origins and self.username:
            raise ConfigError(
                "CORS origin '*' cannot be combined with Basic authentication "
                "(browsers replay stored Basic credentials); use the token"
            )
        self._check_limits()
        self._check_tls()

    def _check_limits(self) -> None:
        limits = (
            self.max_request_bytes,
            self.max_api_bytes,
            self.max_parts,
            self.max_results,
            self.body_timeout,
            self.max_uploads,
            self.max_uploads_per_client,
        )
        if min(limits) <= 0 or self.min_upload_rate < 0:
            raise ConfigError("request limits and timeouts must be positive")

    def _check_tls(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("TLS needs both --tls-cert and --tls-key")
        for path in (self.tls_cert, self.tls_key):
            if path is not None and not path.is_file():
                raise ConfigError(f"TLS file {path} does not exist or is not a file")
