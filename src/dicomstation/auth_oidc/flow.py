"""The httpx.Auth of a server whose users sign in with OpenID Connect.

Each request gets the current access token, renewed with the refresh token
(through Authlib's ``OAuth2Client.refresh_token``) shortly before it expires, so
a fetch that runs longer than a token lives goes on; a 401 from the server
renews it once and resends the request (when its body can be sent again).
Renewed tokens are written back to the store at once, and tokens another
process stored meanwhile are used instead of renewing again (rotating refresh
tokens stay valid across processes). The token is added to requests for the
server's own origin only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator

import httpx

from dicomstation.auth_oidc.provider import (
    OidcConfig,
    ProviderMetadata,
    authlib,
    discover,
    oauth_client,
    oauth_failure,
)
from dicomstation.auth_oidc.tokens import TokenSet, TokenVault
from dicomstation.config import Secret, origin_of
from dicomstation.errors import AuthenticationError, ConfigError

__all__ = ["OidcAuth"]

log = logging.getLogger(__name__)
Flow = Generator[httpx.Request, httpx.Response, None]


class OidcAuth(httpx.Auth):
    """Bearer tokens of an OpenID Connect sign-in, renewed as needed (thread-safe).

    Parameters
    ----------
    config : OidcConfig
        The provider and client, and the server the tokens are for.
    vault : TokenVault
        Where the tokens are kept (OS keyring or 0600 file).
    clock : callable
        Wall-clock seconds (tokens' expiry is stored as epoch time).
    """

    def __init__(
        self, config: OidcConfig, vault: TokenVault, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.vault = vault
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: TokenSet | None = None
        self._meta: ProviderMetadata | None = None
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"OidcAuth(server={self.config.server!r}, issuer={self.config.issuer!r})"

    def sync_auth_flow(self, request: httpx.Request) -> Flow:
        """Authorise ``request``; on 401, renew the token once and resend if possible."""
        if origin_of(str(request.url)) != self.config.origin:
            yield request
            return
        token = self.access_token()
        request.headers["Authorization"] = f"Bearer {token.reveal()}"
        response = yield request
        if response.status_code == 401 and isinstance(request.stream, httpx.ByteStream):
            token = self.access_token(stale=token)
            request.headers["Authorization"] = f"Bearer {token.reveal()}"
            yield request

    async def async_auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        """Not supported: dicomstation's DICOMweb client is synchronous (threads)."""
        raise NotImplementedError("OidcAuth works with httpx.Client only")
        yield request  # pragma: no cover

    def access_token(self, stale: Secret | None = None) -> Secret:
        """A current access token, renewed when expiring or equal to ``stale`` (refused).

        Raises
        ------
        AuthenticationError
            Not signed in, or the provider refused the refresh token (revoked,
            expired): the message tells to run ``dicomstation auth login SERVER``.
        ConnectionFailedError
            The provider cannot be reached.
        """
        with self._lock:
            now = self._clock()
            for tokens in (self._tokens, self.vault.load()):
                if self._usable(tokens, stale, now):
                    assert tokens is not None
                    self._tokens = tokens
                    return tokens.access_token
            self._tokens = self._refresh(now)
            return self._tokens.access_token

    @staticmethod
    def _usable(tokens: TokenSet | None, stale: Secret | None, now: float) -> bool:
        return tokens is not None and tokens.fresh(now) and tokens.access_token != stale

    def _refresh(self, now: float) -> TokenSet:
        # the stored refresh token first: another process may have rotated ours (and
        # providers with reuse detection end the whole session when a spent one comes back)
        current = self.vault.load() or self._tokens
        if current is None:
            raise self.config.failure("not signed in", "OIDC token refresh")
        if not current.refresh_token:
            raise self.config.failure(
                "the access token expired and the provider gave no refresh token",
                "OIDC token refresh",
            )
        try:
            renewed = self._renew(current)
        except AuthenticationError:
            stored = self.vault.load()  # another process may have rotated it meanwhile
            if stored is None or stored.refresh_token == current.refresh_token:
                raise
            renewed = self._renew(stored)
        self.vault.save(renewed)
        self.refreshes += 1
        log.info("server %s: access token renewed", self.config.server)
        return renewed

    def _renew(self, current: TokenSet) -> TokenSet:
        """New tokens for ``current``'s refresh token (errors translated)."""
        if self._meta is None:
            self._meta = discover(self.config)
        _, oauth_error = authlib()
        try:
            with oauth_client(self.config, self._meta) as client:
                answer = client.refresh_token(
                    self._meta.token_endpoint, refresh_token=current.refresh_token.reveal()
                )
            return current.renewed(TokenSet.from_response(dict(answer), now=self._clock()))
        except (oauth_error, httpx.HTTPError) as exc:
            raise oauth_failure(self.config, exc, "OIDC token refresh") from None
        except (ConfigError, ValueError) as exc:
            said = f"unusable token answer ({exc})"
            raise self.config.failure(said, "OIDC token refresh") from None
