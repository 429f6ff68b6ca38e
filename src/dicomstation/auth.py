"""Authentication for DICOMweb servers, as httpx.Auth flows, and the HTTP client factory.

* :class:`BasicAuth` — user/password (per server, or the global credentials of the
  settings, which :meth:`~dicomstation.settings.Settings.server` applies).
* :class:`BearerAuth` — a static bearer token.
* :class:`OAuth2ClientCredentials` — tokens from an OAuth2 token endpoint
  (client-credentials grant), fetched lazily, refreshed before expiry and once
  more when the server answers 401.
* OpenID Connect sign-in (a server with an ``issuer``): the tokens of
  ``dicomstation auth login`` (:mod:`dicomstation.auth_oidc`), renewed the same
  way and kept in the OS keyring (or a 0600 file); Authlib is imported only then.

Secrets stay wrapped in :class:`~dicomstation.config.Secret` until the moment a
header is built; no ``repr``, log line or error message shows them. Every flow is
bound to the origin its credentials were entered for and adds nothing to a
request for another origin; the client's request hook also strips any
``Authorization`` header from a request (a redirect included) to another origin.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Generator
from typing import Any
from urllib.parse import urlsplit

import httpx

from dicomstation.config import Credentials, DicomWebServer, Secret, origin_of
from dicomstation.errors import AuthenticationError, ConfigError
from dicomstation.nodes.http_decoding import (
    ACCEPT_ENCODING,
    MAX_BODY,
    AnswerTooLargeError,
    BoundedDecodingTransport,
)
from dicomstation.nodes.http_proxy import environment_proxy, proxy_transport
from dicomstation.nodes.http_transport import LargeReadTransport

__all__ = [
    "BasicAuth",
    "BearerAuth",
    "OAuth2ClientCredentials",
    "auth_for",
    "http_client",
    "server_auth",
    "tls_verify",
]

Flow = Generator[httpx.Request, httpx.Response, None]
log = logging.getLogger(__name__)
#: a token endpoint's answer (a small JSON object) is refused past this many bytes
MAX_TOKEN_ANSWER = 1 << 20


def _same_origin(request: httpx.Request, origin: str) -> bool:
    """True when ``request`` goes to ``origin`` ('' binds to nothing: always False)."""
    return bool(origin) and origin_of(str(request.url)) == origin


class BasicAuth(httpx.Auth):
    """HTTP Basic authentication with a hidden password."""

    def __init__(self, username: str, password: Secret, *, origin: str) -> None:
        self.username = username
        self._password = password
        self.origin = origin

    def auth_flow(self, request: httpx.Request) -> Flow:
        """Add the ``Authorization: Basic`` header (to a request for our origin only)."""
        if not _same_origin(request, self.origin):
            yield request
            return
        raw = f"{self.username}:{self._password.reveal()}".encode()
        request.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        yield request

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password=Secret('********'))"


class BearerAuth(httpx.Auth):
    """A static bearer token."""

    def __init__(self, token: Secret, *, origin: str) -> None:
        self._token = token
        self.origin = origin

    def auth_flow(self, request: httpx.Request) -> Flow:
        """Add the ``Authorization: Bearer`` header (to a request for our origin only)."""
        if not _same_origin(request, self.origin):
            yield request
            return
        request.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(token=Secret('********'))"


def _replayable(request: httpx.Request) -> bool:
    """A request can be sent again only if its body is not a consumed stream."""
    return isinstance(request.stream, httpx.ByteStream)


class OAuth2ClientCredentials(httpx.Auth):
    """OAuth2 client-credentials grant (RFC 6749 4.4) with token caching and refresh.

    The token request goes through the same client (same TLS, proxy and timeouts).
    The client authenticates to the token endpoint with HTTP Basic
    (``client_secret_basic``). Thread-safe: concurrent requests share one token.

    Parameters
    ----------
    token_url : str
        The token endpoint.
    client_id : str
        The client identifier.
    client_secret : Secret
        The client secret.
    scope : str
        Space-separated scopes ('' for none).
    origin : str
        The origin the tokens are sent to (the DICOMweb server's).
    leeway : float
        Seconds before expiry at which the token is renewed.
    clock : callable
        Monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: Secret,
        scope: str = "",
        *,
        origin: str,
        leeway: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self.origin = origin
        self.leeway = leeway
        self._clock = clock
        self._token: Secret | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        self.token_requests = 0

    def __repr__(self) -> str:
        return (
            f"OAuth2ClientCredentials(token_url={self.token_url!r}, "
            f"client_id={self.client_id!r}, client_secret=Secret('********'))"
        )

    def _token_request(self) -> httpx.Request:
        data = {"grant_type": "client_credentials"}
        if self.scope:
            data["scope"] = self.scope
        raw = f"{self.client_id}:{self._secret.reveal()}".encode()
        headers = {
            "Authorization": "Basic " + base64.b64encode(raw).decode("ascii"),
            "Accept": "application/json",
        }
        extensions = {MAX_BODY: MAX_TOKEN_ANSWER}  # capped by our transport (http_decoding)
        return httpx.Request(
            "POST", self.token_url, data=data, headers=headers, extensions=extensions
        )

    def _fail(self, message: str, status: int | None = None) -> AuthenticationError:
        host = urlsplit(self.token_url).hostname or self.token_url
        return AuthenticationError(
            message, server=host, operation="OAuth2 token request", status=status
        )

    def _accept(self, response: httpx.Response) -> None:
        try:
            response.read()
        except AnswerTooLargeError:
            raise self._fail(
                f"token endpoint answer longer than {MAX_TOKEN_ANSWER} bytes"
            ) from None
        try:
            data = json.loads(response.content)
        except ValueError:
            data = {}
        if response.status_code != 200 or not isinstance(data, dict):
            error = data.get("error", "") if isinstance(data, dict) else ""
            raise self._fail(
                f"token endpoint answered HTTP {response.status_code}"
                + (f" ({error})" if error else ""),
                response.status_code,
            )
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise self._fail("token endpoint answer has no access_token")
        try:
            lifetime = float(data.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        self._token = Secret(token)
        self._expires = self._clock() + lifetime
        self.token_requests += 1

    def _valid(self) -> bool:
        return self._token is not None and self._clock() < self._expires - self.leeway

    def _fetch(self, stale: Secret | None) -> Generator[httpx.Request, httpx.Response, Secret]:
        """Get a token, renewing it when missing, expiring, or equal to ``stale``."""
        with self._lock:
            if not self._valid() or (stale is not None and self._token == stale):
                try:
                    response = yield self._token_request()
                except httpx.HTTPError as exc:
                    raise self._fail(
                        f"cannot reach the token endpoint ({type(exc).__name__})"
                    ) from None
                self._accept(response)
            assert self._token is not None
            return self._token

    def sync_auth_flow(self, request: httpx.Request) -> Flow:
        """Authorise ``request``; on 401, renew the token once and resend if possible."""
        if not _same_origin(request, self.origin):
            yield request
            return
        token = yield from self._fetch(None)
        request.headers["Authorization"] = f"Bearer {token.reveal()}"
        response = yield request
        if response.status_code == 401 and _replayable(request):
            token = yield from self._fetch(token)
            request.headers["Authorization"] = f"Bearer {token.reveal()}"
            yield request

    async def async_auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        """Not supported: dicomstation's DICOMweb client is synchronous (threads)."""
        raise NotImplementedError("OAuth2ClientCredentials works with httpx.Client only")
        yield request  # pragma: no cover


def auth_for(credentials: Credentials, origin: str | None = None) -> httpx.Auth | None:
    """The auth flow for configured credentials (token, then OAuth2, then Basic).

    ``origin`` (default: the credentials' own) is the only origin the flow sends
    them to (a flow bound to no origin sends nothing); credentials entered for
    another origin give no flow at all.
    """
    origin = credentials.origin if origin is None else origin
    if credentials.empty or credentials.origin not in ("", origin):
        return None
    if credentials.token:
        return BearerAuth(credentials.token, origin=origin)
    if credentials.token_url and credentials.client_id:
        return OAuth2ClientCredentials(
            credentials.token_url,
            credentials.client_id,
            credentials.client_secret,
            credentials.scope,
            origin=origin,
        )
    if credentials.username:
        return BasicAuth(credentials.username, credentials.password, origin=origin)
    return None


def server_auth(server: DicomWebServer) -> httpx.Auth | None:
    """The auth flow of a configured server: OpenID Connect when it has an issuer.

    An OIDC server's flow reads its tokens from ``credentials.token_store`` (set by
    :meth:`~dicomstation.settings.Settings.server`); a static token still wins.
    """
    creds = server.credentials
    if creds.issuer and creds.client_id and not creds.token and creds.origin in ("", server.origin):
        from dicomstation.auth_oidc import oidc_auth

        return oidc_auth(server, tls_verify(server))
    return auth_for(creds, server.origin)


def _allowed_origins(server: DicomWebServer) -> frozenset[str]:
    allowed = {server.origin}
    if server.credentials.token_url:
        allowed.add(origin_of(server.credentials.token_url))
    return frozenset(allowed)


def _origin_guard(server: DicomWebServer) -> Callable[[httpx.Request], None]:
    """A request hook: no Authorization header leaves for an origin it was not meant for."""
    allowed = _allowed_origins(server)

    def guard(request: httpx.Request) -> None:
        if "authorization" in request.headers and origin_of(str(request.url)) not in allowed:
            del request.headers["authorization"]
            log.warning(
                "server %s: credentials not sent to %s (they belong to %s)",
                server.name,
                origin_of(str(request.url)),
                server.origin,
            )

    return guard


def tls_verify(server: DicomWebServer) -> ssl.SSLContext | bool:
    """TLS verification for ``server``'s requests: off, its CA bundle, or the system's."""
    if not server.verify_tls:
        return False
    if server.ca_bundle:
        try:
            return ssl.create_default_context(cafile=server.ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"server {server.name!r}: cannot load CA bundle {server.ca_bundle}: {exc}"
            ) from None
    return True


def http_client(server: DicomWebServer, *, connections: int = 8) -> httpx.Client:
    """An httpx.Client for ``server``: auth, TLS verification / CA bundle, proxy, timeouts.

    The proxy is the server's own setting, else the one the environment names for
    its URL (``HTTPS_PROXY``, ``NO_PROXY``...: :mod:`dicomstation.nodes.http_proxy`).

    ``connections`` bounds the connection pool (at least the transfer concurrency).
    """
    timeout = httpx.Timeout(server.timeout, connect=min(server.timeout, 15.0))
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    common: dict[str, Any] = {
        "auth": server_auth(server),
        "event_hooks": {"request": [_origin_guard(server)]},
        "timeout": timeout,
        "follow_redirects": True,
        "trust_env": not server.proxy,
    }
    inner: httpx.BaseTransport
    # httpx ignores the environment's proxies for a client given its own transport
    proxy = server.proxy or environment_proxy(server.url)
    if proxy:
        inner = proxy_transport(proxy, server.name, verify=tls_verify(server), limits=limits)
    else:  # our own transport (large socket reads, nothing patched): nodes/http_transport.py
        inner = LargeReadTransport(verify=tls_verify(server), limits=limits)
    # compressed answers inflated in bounded pieces: nodes/http_decoding.py
    transport = BoundedDecodingTransport(inner)
    return httpx.Client(transport=transport, headers={"Accept-Encoding": ACCEPT_ENCODING}, **common)
