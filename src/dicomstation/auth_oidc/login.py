"""Signing in: the authorization code flow with PKCE, and the device authorization flow.

:func:`login_browser` (RFC 6749 4.1 + RFC 7636 PKCE + RFC 8252 loopback
redirect) listens on ``http://127.0.0.1:<free port>/callback`` for the one
answer whose ``state`` is ours (other requests get 400 and change nothing),
hands the authorization URL to ``open_url`` (the CLI opens a browser and prints
it), and exchanges the code with its verifier. :func:`login_device` (RFC 8628)
shows a user code and a verification URL, then polls the token endpoint at the
interval the provider asks for until the user approved, refused, or the code
expired. Both are built on Authlib's ``OAuth2Client``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from dicomstation.auth_oidc.provider import (
    DEVICE_GRANT,
    OidcConfig,
    ProviderMetadata,
    authlib,
    discover,
    oauth_client,
    oauth_failure,
)
from dicomstation.auth_oidc.tokens import TokenSet
from dicomstation.errors import AuthenticationError, ConfigError

__all__ = ["DevicePrompt", "login_browser", "login_device"]

CALLBACK_PATH = "/callback"
_PAGE = "<!doctype html><title>dicomstation</title><p>{}</p>"


class _Callback(BaseHTTPRequestHandler):
    server: _Listener
    timeout = 10  # a browser's idle preconnect does not hold the listener

    def log_message(self, format: str, *args: object) -> None:  # the URL holds the code
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        state = query.get("state", [""])[0]
        if parts.path != CALLBACK_PATH or not state or state != self.server.state:
            return self._answer(400, "This is not the sign-in this program is waiting for.")
        if "error" in query:
            self._answer(400, "Sign-in failed; see the terminal.")
        else:
            self._answer(200, "Signed in to dicomstation; you may close this window.")
        self.server.arrived(f"http://{self.server.host}:{self.server.port}{self.path}", query)

    def _answer(self, status: int, text: str) -> None:
        body = _PAGE.format(text).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


class _Listener(ThreadingHTTPServer):
    """The loopback redirect target: one answer with our state, then done."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Callback)
        self.host, self.port = "127.0.0.1", int(self.server_address[1])
        self.state = ""
        self.url = ""
        self.query: dict[str, list[str]] = {}
        self.done = threading.Event()

    @property
    def redirect_uri(self) -> str:
        return f"http://{self.host}:{self.port}{CALLBACK_PATH}"

    def arrived(self, url: str, query: dict[str, list[str]]) -> None:
        if not self.done.is_set():
            self.url, self.query = url, query
            self.done.set()

    def __enter__(self) -> _Listener:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()  # serving before the browser is sent to the provider
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self._thread.join(5)
        self.server_close()


def _wait_for_callback(cfg: OidcConfig, listener: _Listener, timeout: float) -> str:
    if not listener.done.wait(timeout):
        raise AuthenticationError(
            f"no answer from the browser within {timeout:g} s",
            server=cfg.server,
            operation="OIDC sign-in",
        )
    if "error" in listener.query:
        error = listener.query["error"][0]
        said = listener.query.get("error_description", [""])[0][:200]
        raise AuthenticationError(
            f"the provider refused ({error}{': ' + said if said else ''})",
            server=cfg.server,
            operation="OIDC sign-in",
        )
    return listener.url


def _need(meta: ProviderMetadata, endpoint: str, cfg: OidcConfig, flow: str) -> str:
    url = str(getattr(meta, endpoint))
    if not url:
        raise ConfigError(
            f"server {cfg.server!r}: the provider {cfg.issuer} offers no {flow} "
            f"(no {endpoint} in its discovery document)"
        )
    return url


def login_browser(
    cfg: OidcConfig, open_url: Callable[[str], None], *, timeout: float = 300.0
) -> TokenSet:
    """Sign in through a browser (authorization code + PKCE S256, loopback redirect).

    ``open_url`` is given the authorization URL (it has no secret: the code
    verifier never leaves this process) and returns at once.

    Raises
    ------
    AuthenticationError
        The user or provider refused, the answer did not come in ``timeout``
        seconds, or the code exchange failed.
    """
    _, oauth_error = authlib()
    from authlib.common.security import generate_token

    meta = discover(cfg)
    authorize = _need(meta, "authorization_endpoint", cfg, "browser sign-in")
    verifier = generate_token(64)  # RFC 7636: 43..128 characters
    with _Listener() as listener:
        options = {"redirect_uri": listener.redirect_uri, "code_challenge_method": "S256"}
        with oauth_client(cfg, meta, **options) as client:
            url, listener.state = client.create_authorization_url(authorize, code_verifier=verifier)
            open_url(url)
            answer = _wait_for_callback(cfg, listener, timeout)
            try:
                token = client.fetch_token(
                    meta.token_endpoint,
                    authorization_response=answer,
                    code_verifier=verifier,
                    state=listener.state,
                )
            except (oauth_error, httpx.HTTPError) as exc:
                raise oauth_failure(cfg, exc, "OIDC sign-in", relogin=False) from None
    return TokenSet.from_response(dict(token))


@dataclass(frozen=True)
class DevicePrompt:
    """What the user must do on another device (RFC 8628 3.2)."""

    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: float


def _device_request(cfg: OidcConfig, client: Any, endpoint: str) -> dict[str, Any]:
    _, oauth_error = authlib()
    auth = client.client_auth(client.token_endpoint_auth_method)
    data = {"scope": cfg.scope}  # the client id: added by the client auth (body or header)
    try:
        response = client.post(endpoint, data=data, auth=auth)
    except (oauth_error, httpx.HTTPError) as exc:
        raise oauth_failure(cfg, exc, "OIDC device authorization", relogin=False) from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.status_code != 200 or not isinstance(answer, dict) or "device_code" not in answer:
        error = answer.get("error", "") if isinstance(answer, dict) else ""
        raise AuthenticationError(
            f"device authorization answered HTTP {response.status_code}"
            + (f" ({error})" if error else ""),
            server=cfg.server,
            operation="OIDC device authorization",
        )
    return answer


def _poll(
    cfg: OidcConfig,
    client: Any,
    started: dict[str, Any],
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    """Poll the token endpoint until the user decided or the code expired."""
    _, oauth_error = authlib()
    interval = max(1.0, float(started.get("interval", 5)))
    deadline = time.monotonic() + float(started.get("expires_in", 600))
    while time.monotonic() < deadline:
        sleep(interval)
        try:
            return dict(
                client.fetch_token(grant_type=DEVICE_GRANT, device_code=started["device_code"])
            )
        except oauth_error as exc:
            error = getattr(exc, "error", "")
            if error == "slow_down":
                interval += 5  # RFC 8628 3.5
            elif error != "authorization_pending":
                raise oauth_failure(cfg, exc, "OIDC device sign-in", relogin=False) from None
        except httpx.HTTPError as exc:
            raise oauth_failure(cfg, exc, "OIDC device sign-in", relogin=False) from None
    raise AuthenticationError(
        "the user code expired before it was approved",
        server=cfg.server,
        operation="OIDC device sign-in",
    )


def login_device(
    cfg: OidcConfig,
    show: Callable[[DevicePrompt], None],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> TokenSet:
    """Sign in on another device (RFC 8628): ``show`` tells the user where and which code.

    Raises
    ------
    AuthenticationError
        The user refused, the code expired, or the provider refused the client.
    """
    meta = discover(cfg)
    endpoint = _need(meta, "device_authorization_endpoint", cfg, "device sign-in")
    with oauth_client(cfg, meta) as client:
        started = _device_request(cfg, client, endpoint)
        uri = str(started.get("verification_uri") or started.get("verification_url", ""))
        show(
            DevicePrompt(
                user_code=str(started.get("user_code", "")),
                verification_uri=uri,
                verification_uri_complete=str(started.get("verification_uri_complete", "")),
                expires_in=float(started.get("expires_in", 600)),
            )
        )
        token = _poll(cfg, client, started, sleep)
    return TokenSet.from_response(token)
