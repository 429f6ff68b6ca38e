"""OpenID Connect sign-in for secured DICOMweb servers (Keycloak, Azure AD / Entra ID, Google).

A server whose settings name an ``issuer`` and a ``client_id`` (``server add
--oidc-issuer ... --oidc-client-id ...``) is signed in to once, with
``dicomstation auth login SERVER`` (browser, authorization code + PKCE) or
``--device`` (RFC 8628, for machines without a browser). The refresh token and
the current access token are kept in the OS keyring (else a 0600 file beside
the settings), bound to the issuer, the server's origin and the client id; the
DICOMweb client's :class:`~dicomstation.auth_oidc.flow.OidcAuth` renews the
access token before it expires and once more on a 401. Built on Authlib
(discovery, PKCE, token requests), imported only when such a server is used.
See docs/oidc.md.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from dicomstation.auth_oidc.provider import OidcConfig
from dicomstation.auth_oidc.tokens import TokenSet, TokenState, TokenVault
from dicomstation.config import DicomWebServer
from dicomstation.errors import ConfigError

if TYPE_CHECKING:
    from dicomstation.auth_oidc.flow import OidcAuth

__all__ = ["OidcConfig", "TokenSet", "TokenState", "TokenVault", "oidc_auth", "vault_for"]


def vault_for(server: DicomWebServer, config: OidcConfig) -> TokenVault:
    """The token vault of ``server`` (its credentials' ``token_store``).

    Raises
    ------
    ConfigError
        When the server came with no token store (load it with ``Settings.server``).
    """
    store = server.credentials.token_store
    if store is None:
        raise ConfigError(
            f"server {server.name!r}: OpenID Connect needs a token store "
            "(servers from Settings.server have one)"
        )
    return TokenVault(store, config.binding)


def oidc_auth(server: DicomWebServer, verify: ssl.SSLContext | bool = True) -> OidcAuth:
    """The httpx.Auth sending ``server``'s OpenID Connect access tokens (renewed as needed)."""
    from dicomstation.auth_oidc.flow import OidcAuth

    config = OidcConfig.for_server(server, verify)
    return OidcAuth(config, vault_for(server, config))
