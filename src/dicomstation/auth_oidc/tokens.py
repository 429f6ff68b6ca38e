"""OpenID Connect tokens: what one sign-in gives, and where it is kept (no Authlib here).

A :class:`TokenSet` is kept as one JSON entry of a
:class:`~dicomstation.secret_store.SecretStore` (the OS keyring, else a 0600
file) named by the server and bound to the issuer, the DICOMweb server's origin
and the client id it was obtained for: tokens found under another binding (the
server moved, another issuer or client) are never used.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Any

from dicomstation.config import Secret
from dicomstation.errors import ConfigError
from dicomstation.secret_store import SecretStore, entry_name

__all__ = ["Binding", "TokenSet", "TokenState", "TokenVault"]

#: At most this long before expiry an access token is renewed (a quarter of a
#: short lifetime, so a 2 s token is not renewed on every request).
MAX_LEEWAY = 60.0


@dataclass(frozen=True)
class Binding:
    """What tokens are bound to: the issuer, the DICOMweb server's origin, the client."""

    server: str
    issuer: str
    origin: str
    client_id: str

    @property
    def entry(self) -> str:
        """The store entry of this server's tokens."""
        return entry_name(f"oidc:{self.server}", self.origin, f"tokens@{self.issuer}")


@dataclass(frozen=True)
class TokenSet:
    """An access token (with its expiry, epoch seconds) and an optional refresh token."""

    access_token: Secret
    expires_at: float
    lifetime: float
    refresh_token: Secret
    scope: str = ""

    @classmethod
    def from_response(cls, data: dict[str, Any], *, now: float | None = None) -> TokenSet:
        """The tokens of a token endpoint answer (RFC 6749 5.1)."""
        now = time.time() if now is None else now
        access = data.get("access_token")
        if not isinstance(access, str) or not access:
            raise ConfigError("the token endpoint's answer has no access_token")
        kind = str(data.get("token_type", "Bearer"))
        if kind.lower() != "bearer":
            raise ConfigError(f"the token endpoint issued a {kind!r} token, not Bearer")
        try:
            lifetime = float(data.get("expires_in", 300))
        except (TypeError, ValueError):
            lifetime = 300.0
        refresh = data.get("refresh_token")
        return cls(
            access_token=Secret(access),
            expires_at=now + lifetime,
            lifetime=lifetime,
            refresh_token=Secret(refresh if isinstance(refresh, str) else ""),
            scope=str(data.get("scope", "")),
        )

    def fresh(self, now: float, max_leeway: float = MAX_LEEWAY) -> bool:
        """True while the access token is not within its leeway of expiry."""
        leeway = min(max_leeway, self.lifetime / 4)
        return now < self.expires_at - leeway

    def renewed(self, newer: TokenSet) -> TokenSet:
        """``newer``, keeping this refresh token when the provider sent none."""
        return newer if newer.refresh_token else replace(newer, refresh_token=self.refresh_token)


@dataclass(frozen=True)
class TokenState:
    """What ``auth show`` says of a server's sign-in (never a token)."""

    signed_in: bool
    expires_at: float
    refreshable: bool
    where: str


class TokenVault:
    """The tokens of one server in one store, under one :class:`Binding`."""

    def __init__(self, store: SecretStore, binding: Binding) -> None:
        self.store = store
        self.binding = binding

    def __repr__(self) -> str:
        return f"TokenVault({self.binding.server!r}, {self.store.where!r})"

    def load(self) -> TokenSet | None:
        """The stored tokens (None when absent, unreadable or bound to something else)."""
        raw = self.store.get(self.binding.entry)
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("binding") != list(self._bound()):
            return None
        try:
            return TokenSet(
                access_token=Secret(str(data["access_token"])),
                expires_at=float(data["expires_at"]),
                lifetime=float(data["lifetime"]),
                refresh_token=Secret(str(data.get("refresh_token", ""))),
                scope=str(data.get("scope", "")),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def save(self, tokens: TokenSet) -> None:
        """Keep ``tokens`` (replacing what was kept)."""
        data = {
            "binding": list(self._bound()),
            "access_token": tokens.access_token.reveal(),
            "expires_at": tokens.expires_at,
            "lifetime": tokens.lifetime,
            "refresh_token": tokens.refresh_token.reveal(),
            "scope": tokens.scope,
        }
        self.store.set(self.binding.entry, json.dumps(data))

    def clear(self) -> None:
        """Forget the tokens."""
        self.store.delete(self.binding.entry)

    def state(self) -> TokenState:
        """The sign-in's state, for ``auth show``."""
        tokens = self.load()
        if tokens is None:
            return TokenState(False, 0.0, False, self.store.where)
        return TokenState(True, tokens.expires_at, bool(tokens.refresh_token), self.store.where)

    def _bound(self) -> tuple[str, str, str]:
        b = self.binding
        return (b.issuer, b.origin, b.client_id)
