"""An OpenID Connect provider as a server's settings name it: discovery and Authlib's client.

Authlib is imported here, inside functions only, the first time a server with
an issuer is used: ``dicomstation --help`` and servers without OIDC never load
it. Its httpx integration warns (a DeprecationWarning) that it prefers the
``httpx2`` package; that warning is silenced at its first import only
(:mod:`dicomstation.quiet_import`), and the filters are restored afterwards.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from dicomstation.auth_oidc.tokens import Binding
from dicomstation.config import DicomWebServer, Secret, is_loopback
from dicomstation.errors import (
    AuthenticationError,
    ConfigError,
    ConnectionFailedError,
    NodeError,
    RemoteStatusError,
)
from dicomstation.nodes.http_decoding import (
    ACCEPT_ENCODING,
    AnswerTooLargeError,
    BoundedDecodingTransport,
)
from dicomstation.nodes.http_proxy import environment_proxy, proxy_transport
from dicomstation.quiet_import import import_quietly

__all__ = ["OidcConfig", "ProviderMetadata", "check_issuer", "discover", "oauth_client"]

DEFAULT_SCOPE = "openid"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: the provider's answers (discovery document, tokens, device codes) are small JSON,
#: read whole (by us and by Authlib): a longer one is refused
MAX_ANSWER_BYTES = 1 << 20


def check_issuer(name: str, url: str, what: str = "OIDC issuer") -> str:
    """``url`` (trailing / cut), which must be https, or http on a loopback address.

    Raises
    ------
    ConfigError
        Naming the server, for another scheme or no host.
    """
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    secure = parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host))
    if not host or not secure:
        raise ConfigError(
            f"server {name!r}: the {what} {url!r} must be an https:// URL "
            "(http:// only on a loopback address)"
        )
    return url


@dataclass(frozen=True)
class OidcConfig:
    """One server's OpenID Connect client settings (no token here)."""

    server: str
    origin: str
    issuer: str
    client_id: str
    client_secret: Secret = field(default_factory=lambda: Secret(""), repr=False)
    scope: str = DEFAULT_SCOPE
    verify: ssl.SSLContext | bool = True
    timeout: float = 30.0
    proxy: str = ""

    @classmethod
    def for_server(cls, server: DicomWebServer, verify: ssl.SSLContext | bool) -> OidcConfig:
        """The settings of ``server`` (which has an issuer and a client id)."""
        creds = server.credentials
        if not (creds.issuer and creds.client_id):
            raise ConfigError(
                f"server {server.name!r} has no OIDC issuer and client id "
                f"(server edit {server.name} --oidc-issuer URL --oidc-client-id ID)"
            )
        return cls(
            server=server.name,
            origin=server.origin,
            issuer=check_issuer(server.name, creds.issuer),
            client_id=creds.client_id,
            client_secret=creds.client_secret,
            scope=creds.scope or DEFAULT_SCOPE,
            verify=verify,
            timeout=min(server.timeout, 30.0),
            proxy=server.proxy,
        )

    @property
    def binding(self) -> Binding:
        """What this server's tokens are bound to."""
        return Binding(self.server, self.issuer, self.origin, self.client_id)

    def failure(self, message: str, operation: str = "OIDC sign-in") -> AuthenticationError:
        """An AuthenticationError naming the server (and telling how to sign in again)."""
        return AuthenticationError(
            f"{message}; run `dicomstation auth login {self.server}`",
            server=self.server,
            operation=operation,
        )


@dataclass(frozen=True)
class ProviderMetadata:
    """The endpoints of an OpenID Connect discovery document that we use."""

    issuer: str
    token_endpoint: str
    authorization_endpoint: str = ""
    device_authorization_endpoint: str = ""
    revocation_endpoint: str = ""
    auth_methods: tuple[str, ...] = ()


_ENDPOINTS = ("authorization_endpoint", "device_authorization_endpoint", "revocation_endpoint")


def _transport(cfg: OidcConfig) -> httpx.BaseTransport:
    """TLS, the proxy (the server's, else the environment's) and bounded answers."""
    proxy = cfg.proxy or environment_proxy(cfg.issuer)
    if proxy:
        inner = proxy_transport(proxy, cfg.server, verify=cfg.verify)
    else:
        inner = httpx.HTTPTransport(verify=cfg.verify)
    return BoundedDecodingTransport(inner, max_body=MAX_ANSWER_BYTES)


def _client_options(cfg: OidcConfig) -> dict[str, Any]:
    return {
        "transport": _transport(cfg),
        "timeout": cfg.timeout,
        "headers": {"Accept-Encoding": ACCEPT_ENCODING},
    }


def _http(cfg: OidcConfig) -> httpx.Client:
    return httpx.Client(**_client_options(cfg))


def _document(cfg: OidcConfig) -> dict[str, Any]:
    url = f"{cfg.issuer}/.well-known/openid-configuration"
    server, operation = cfg.server, "OIDC discovery"
    try:
        with _http(cfg) as client:
            response = client.get(url, headers={"Accept": "application/json"})
    except AnswerTooLargeError as exc:
        raise oauth_failure(cfg, exc, operation) from None
    except httpx.HTTPError as exc:
        raise ConnectionFailedError(
            f"cannot reach the issuer {cfg.issuer} ({type(exc).__name__})",
            server=server,
            operation=operation,
        ) from None
    if response.status_code != 200:
        raise RemoteStatusError(
            f"{url} answered HTTP {response.status_code}",
            server=server,
            operation=operation,
            status=response.status_code,
        )
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise RemoteStatusError(
            f"{url} is not a JSON discovery document", server=server, operation=operation
        )
    return data


def discover(cfg: OidcConfig) -> ProviderMetadata:
    """The provider's endpoints, from ``ISSUER/.well-known/openid-configuration``.

    Raises
    ------
    NodeError
        The issuer cannot be reached, or its document is not usable (another
        issuer, no token endpoint, an endpoint that is not https).
    """
    data = _document(cfg)
    if str(data.get("issuer", "")).rstrip("/") != cfg.issuer:
        raise RemoteStatusError(
            f"the discovery document names issuer {data.get('issuer')!r}, not {cfg.issuer!r}",
            server=cfg.server,
            operation="OIDC discovery",
        )
    try:
        token = check_issuer(cfg.server, str(data.get("token_endpoint", "")), "token endpoint")
        found = {
            key: check_issuer(cfg.server, str(data[key]), key.replace("_", " "))
            for key in _ENDPOINTS
            if data.get(key)
        }
    except ConfigError as exc:
        raise RemoteStatusError(str(exc), server=cfg.server, operation="OIDC discovery") from None
    methods = data.get("token_endpoint_auth_methods_supported") or ()
    return ProviderMetadata(
        issuer=cfg.issuer,
        token_endpoint=token,
        auth_methods=tuple(str(m) for m in methods if isinstance(m, str)),
        **found,
    )


def _auth_method(cfg: OidcConfig, meta: ProviderMetadata) -> str:
    """How the client authenticates at the token endpoint."""
    if not cfg.client_secret:
        return "none"  # a public client (PKCE / device flow): client_id in the body
    if "client_secret_basic" not in meta.auth_methods and "client_secret_post" in meta.auth_methods:
        return "client_secret_post"
    return "client_secret_basic"


def authlib() -> tuple[Any, type[Exception]]:
    """Authlib's httpx ``OAuth2Client`` class and its ``OAuthError`` (imported on first use)."""
    # its httpx2 preference notice, and the "always" filter authlib.deprecate adds for its
    # warnings when imported (ours goes before it), only for the first import (quiet_import)
    client = import_quietly(
        "authlib.integrations.httpx_client", Warning, first=("authlib.deprecate",)
    )
    return client.OAuth2Client, client.OAuthError


def oauth_client(cfg: OidcConfig, meta: ProviderMetadata, **kwargs: Any) -> Any:
    """An Authlib ``OAuth2Client`` (an httpx.Client) for the provider: TLS, proxy, timeout."""
    client_class, _ = authlib()
    return client_class(
        client_id=cfg.client_id,
        client_secret=cfg.client_secret.reveal() or None,
        token_endpoint_auth_method=_auth_method(cfg, meta),
        scope=cfg.scope,
        token_endpoint=meta.token_endpoint,
        **_client_options(cfg),
        **kwargs,
    )


def oauth_failure(
    cfg: OidcConfig, exc: Exception, operation: str, *, relogin: bool = True
) -> NodeError:
    """The dicomstation error for an Authlib or httpx failure at the provider."""
    if isinstance(exc, AnswerTooLargeError):
        return RemoteStatusError(
            f"the provider {cfg.issuer} sent an answer longer than {exc.limit} bytes",
            server=cfg.server,
            operation=operation,
        )
    if isinstance(exc, httpx.HTTPError):
        return ConnectionFailedError(
            f"cannot reach the provider {cfg.issuer} ({type(exc).__name__})",
            server=cfg.server,
            operation=operation,
        )
    error = str(getattr(exc, "error", "") or type(exc).__name__)
    description = str(getattr(exc, "description", "") or "")[:200]
    said = f"the provider refused ({error}{': ' + description if description else ''})"
    if relogin:
        return cfg.failure(said, operation)
    return AuthenticationError(said, server=cfg.server, operation=operation)
