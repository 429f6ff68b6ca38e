"""A real OpenID Connect provider for the tests, built from Authlib's server components.

Authlib's generic ``AuthorizationServer`` (RFC 6749) with the authorization code
grant + PKCE (RFC 7636, required), the refresh token grant (rotating refresh
tokens), the device authorization endpoint and grant (RFC 8628) and token
revocation (RFC 7009), integrated here with the standard library's HTTP server
(the "framework": requests in, ``(status, body, headers)`` out), served on
127.0.0.1 on a free port in a thread, with a discovery document at
``/.well-known/openid-configuration``. The test user is approved automatically
at ``/authorize``; a device code is approved by a POST to ``/device``.

:meth:`Provider.valid` is how the resource server checks a bearer token: it
exists, was not revoked, and has not expired (wall clock).
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from authlib.common.security import generate_token
from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Request, TokenMixin, grants
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc8628 import (
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
    DeviceCredentialDict,
)

CLIENT_ID = "dicomstation-cli"
CONFIDENTIAL_ID, CONFIDENTIAL_SECRET = "dicomstation-conf", "conf-S3CRET-client"
USER = "ann"
AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]
GRANTS = ("authorization_code", "refresh_token", DeviceCodeGrant.GRANT_TYPE)


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    """A registered client (public, or with a secret): loopback redirects (any port, /callback)."""

    client_id: str = CLIENT_ID
    secret: str = ""

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return "http://127.0.0.1/callback"

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in ("openid", "dicomweb"))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        parts = urlsplit(redirect_uri)  # RFC 8252 7.3: loopback, any port
        loopback = parts.scheme == "http" and parts.hostname == "127.0.0.1"
        return loopback and parts.path == "/callback"

    def check_client_secret(self, client_secret: str) -> bool:
        return bool(self.secret) and hmac.compare_digest(client_secret, self.secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == ("client_secret_basic" if self.secret else "none")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in GRANTS


@dataclass
class Token(TokenMixin):  # type: ignore[misc]
    """An issued access token and its refresh token."""

    access_token: str
    refresh_token: str
    client_id: str
    user: str
    scope: str
    expires_at: float
    revoked: bool = False
    refresh_revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return int(self.expires_at - time.time())

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> str:
        return self.user

    def get_client(self) -> Client:
        return Client(self.client_id)


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    code_challenge: str
    code_challenge_method: str

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Store:
    """Everything the provider issued (the tests read it to check for leaks)."""

    lifetime: float = 3600.0
    deny: bool = False
    codes: dict[str, Code] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    devices: dict[str, DeviceCredentialDict] = field(default_factory=dict)
    approved: dict[str, str] = field(default_factory=dict)
    grants: list[str] = field(default_factory=list)
    auth_methods: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def by_refresh(self, refresh_token: str) -> Token | None:
        return next((t for t in self.tokens.values() if t.refresh_token == refresh_token), None)

    def secrets(self) -> list[str]:
        """Every access and refresh token issued."""
        with self.lock:
            return [s for t in self.tokens.values() for s in (t.access_token, t.refresh_token) if s]


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        self.server.store.codes[code] = Code(
            code, request.client.get_client_id(), data.get("redirect_uri", ""), request.scope,
            request.user, data.get("code_challenge", ""), data.get("code_challenge_method", ""),
        )  # fmt: skip

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        found = self.server.store.codes.get(code)
        return found if found and found.client_id == client.client_id else None

    def delete_authorization_code(self, authorization_code: Code) -> None:
        self.server.store.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: Code) -> str:
        return authorization_code.user


class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: each refresh token is used once

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        token = self.server.store.by_refresh(refresh_token)
        return token if token and not token.refresh_revoked else None

    def authenticate_user(self, refresh_token: Token) -> str:
        return refresh_token.user

    def revoke_old_credential(self, refresh_token: Token) -> None:
        refresh_token.refresh_revoked = True


class DeviceGrant(DeviceCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def query_device_credential(self, device_code: str) -> DeviceCredentialDict | None:
        return self.server.store.devices.get(device_code)

    def query_user_grant(self, user_code: str) -> tuple[str, bool] | None:
        user = self.server.store.approved.get(user_code)
        return (user, True) if user else None

    def should_slow_down(self, credential: DeviceCredentialDict) -> bool:
        return False


class DeviceEndpoint(DeviceAuthorizationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = AUTH_METHODS
    INTERVAL = 1

    def get_verification_uri(self) -> str:
        return f"{self.server.issuer}/device"

    def save_device_credential(self, client_id: str, scope: str, data: dict[str, Any]) -> None:
        credential = DeviceCredentialDict(
            client_id=client_id, scope=scope, expires_at=time.time() + self.EXPIRES_IN, **data
        )
        self.server.store.devices[data["device_code"]] = credential


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        store = self.server.store
        return store.tokens.get(token_string) or store.by_refresh(token_string)

    def revoke_token(self, token: Token, request: OAuth2Request) -> None:
        token.revoked = token.refresh_revoked = True


class _Request(OAuth2Request):  # type: ignore[misc]
    """Authlib's request over what the stdlib handler read."""

    def __init__(self, method: str, uri: str, headers: Any, form: dict[str, str]) -> None:
        super().__init__(method, uri, headers=headers)
        self._args = dict(parse_qsl(urlsplit(uri).query))
        self._form = form
        self.payload = BasicOAuth2Payload({**self._args, **form})

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class Server(AuthorizationServer):  # type: ignore[misc]
    """Authlib's AuthorizationServer with our tiny framework integration."""

    def __init__(self, store: Store, issuer: str) -> None:
        super().__init__(scopes_supported=["openid", "dicomweb"])
        self.store, self.issuer = store, issuer
        tokens = BearerTokenGenerator(
            lambda *a, **k: "at-" + generate_token(40),
            lambda *a, **k: "rt-" + generate_token(48),
            lambda client, grant_type: self.store.lifetime,
        )
        self.register_token_generator("default", tokens)
        self.register_grant(CodeGrant, [CodeChallenge(required=True)])
        self.register_grant(RefreshGrant)
        self.register_grant(DeviceGrant)
        self.register_endpoint(DeviceEndpoint)
        self.register_endpoint(Revocation)

    def query_client(self, client_id: str) -> Client | None:
        clients = {
            CLIENT_ID: Client(),
            CONFIDENTIAL_ID: Client(CONFIDENTIAL_ID, CONFIDENTIAL_SECRET),
        }
        return clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        with self.store.lock:
            self.store.grants.append(request.payload.grant_type or "")
            self.store.auth_methods.append(request.auth_method or "")
            self.store.tokens[token["access_token"]] = Token(
                token["access_token"], token.get("refresh_token", ""), request.client.client_id,
                request.user, token.get("scope", ""), time.time() + float(token["expires_in"]),
            )  # fmt: skip

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return request if isinstance(request, OAuth2Request) else _Request(*request)

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, Any]:
        return status, body, headers

    def send_signal(self, name: str, *args: object, **kwargs: object) -> None:
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _request(self) -> tuple[str, str, Any, dict[str, str]]:
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode())) if length else {}
        return (self.command, self.server.base + self.path, self.headers, form)

    def _reply(self, answer: tuple[int, Any, Any]) -> None:
        status, body, headers = answer
        data = (json.dumps(body) if isinstance(body, dict) else str(body or "")).encode()
        self.send_response(status)
        for name, value in headers or []:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        oauth = self.server.oauth
        path = urlsplit(self.path).path
        if path == "/.well-known/openid-configuration":
            json_type = [("Content-Type", "application/json")]
            return self._reply((200, self.server.discovery(), json_type))
        if path != "/authorize":
            return self._reply((404, {"error": "not_found"}, []))
        request = oauth.create_oauth2_request(self._request())
        grant = oauth.get_consent_grant(request, end_user=USER)  # the test user approves
        user = None if oauth.store.deny else USER  # ... or refuses
        self._reply(oauth.create_authorization_response(request, grant_user=user, grant=grant))

    def do_POST(self) -> None:
        oauth, path = self.server.oauth, urlsplit(self.path).path
        request = self._request()
        if path == "/token":
            return self._reply(oauth.create_token_response(request))
        if path == "/device_authorization":
            return self._reply(oauth.create_endpoint_response("device_authorization", request))
        if path == "/revoke":
            return self._reply(oauth.create_endpoint_response("revocation", request))
        if path == "/device":  # the verification page: the signed-in test user approves a code
            code = request[3].get("user_code", "")
            known = any(d["user_code"] == code for d in self.server.oauth.store.devices.values())
            if known:
                self.server.oauth.store.approved[code] = USER
            return self._reply((200 if known else 404, {"approved": known}, []))
        self._reply((404, {"error": "not_found"}, []))


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, store: Store) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.base = f"http://127.0.0.1:{self.server_address[1]}"
        self.oauth = Server(store, self.base)

    def discovery(self) -> dict[str, Any]:
        base = self.base
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "device_authorization_endpoint": f"{base}/device_authorization",
            "revocation_endpoint": f"{base}/revoke",
            "token_endpoint_auth_methods_supported": AUTH_METHODS,
            "grant_types_supported": list(GRANTS),
            "code_challenge_methods_supported": ["S256"],
            "response_types_supported": ["code"],
        }


@dataclass
class Provider:
    """A running provider: its issuer URL and what it issued."""

    issuer: str
    store: Store

    def valid(self, access_token: str) -> bool:
        """The resource server's check: issued here, not revoked, not expired."""
        with self.store.lock:
            token = self.store.tokens.get(access_token)
            return token is not None and not token.revoked and not token.is_expired()

    def expiry(self, access_token: str) -> float:
        with self.store.lock:
            return self.store.tokens[access_token].expires_at

    def revoke_everything(self) -> None:
        """The user's session ends at the provider: every token and refresh token refused."""
        with self.store.lock:
            for token in self.store.tokens.values():
                token.revoked = token.refresh_revoked = True

    def revoke_access_tokens(self) -> None:
        """Access tokens refused (refresh tokens still good): the client must renew on 401."""
        with self.store.lock:
            for token in self.store.tokens.values():
                token.revoked = True


@contextmanager
def running_provider(lifetime: float = 3600.0) -> Iterator[Provider]:
    """The provider on 127.0.0.1 (free port), stopped on exit."""
    store = Store(lifetime=lifetime)
    httpd = _HttpServer(store)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Provider(httpd.base, store)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
