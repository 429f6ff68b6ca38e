"""The ASGI guard in front of every route: Host, origin, credentials, body size and pace.

One pure ASGI middleware (no thread, no buffering) does, in order:

1. refuse foreign Host names when bound to loopback (DNS rebinding) — 400;
2. refuse state-changing requests a browser says come from another origin
   unless that origin is allowed by CORS — 403;
3. exchange the login URL ``/?token=`` for an HttpOnly SameSite=Strict cookie,
   then require credentials everywhere (:class:`~dicomstation.server.access.Access`) — 401;
4. refuse a declared Content-Length over the limit — 413;
5. watch the body as it is read: stalled longer than ``body_timeout`` or slower
   than ``min_upload_rate`` on average — 408; more bytes than the limit — 413.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from dicomstation.server.access import Access, cookie_name, host_allowed, request_origin
from dicomstation.server.options import ServerOptions

__all__ = ["BodyError", "Guard"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LOGIN_PAGE = """<!doctype html><meta charset="utf-8"><title>dicomstation: token needed</title>
<h1>dicomstation</h1><p>Open the URL with <code>?token=</code> that <code>dicomstation ui</code>
printed, or paste the token here.</p>
<form method="get" action="/"><input name="token" type="password" autofocus size="50">
<button>Open</button></form>"""


class BodyError(HTTPException):
    """A request body that stalls, trickles, or is too large (408 / 413)."""


class _BodyWatch:
    """Wraps ``receive``: time, pace and size limits while the body is incomplete."""

    def __init__(self, receive: Receive, limit: int, options: ServerOptions) -> None:
        self.receive = receive
        self.limit = limit
        self.timeout = options.body_timeout
        self.min_rate = options.min_upload_rate
        self.started = time.monotonic()
        self.total = 0
        self.done = False

    async def __call__(self) -> Message:
        if self.done:
            return await self.receive()
        with anyio.move_on_after(self.timeout) as scope:
            message = await self.receive()
        if scope.cancelled_caught:
            raise BodyError(408, f"request body stalled for {self.timeout:g} s")
        if message["type"] != "http.request":
            self.done = True
            return message
        self.total += len(message.get("body", b""))
        self.done = not message.get("more_body", False)
        if self.total > self.limit:
            raise BodyError(413, f"request exceeds the limit of {self.limit} bytes")
        elapsed = time.monotonic() - self.started
        if not self.done and elapsed > self.timeout and self.total < self.min_rate * elapsed:
            raise BodyError(
                408,
                f"request body too slow ({self.total / elapsed:.0f} bytes/s for {elapsed:.0f} s)",
            )
        return message


class Guard:
    """Pure ASGI middleware enforcing :class:`ServerOptions` (see the module docstring)."""

    def __init__(self, app: ASGIApp, options: ServerOptions) -> None:
        self.app = app
        self.options = options
        self.access = Access(options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        watch = _BodyWatch(receive, self._body_limit(scope), self.options)
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, watch, tracked_send)
        except BodyError as exc:  # raised outside a route (no handler saw it)
            if started:
                raise
            await JSONResponse({"detail": exc.detail}, exc.status_code)(scope, receive, send)

    def _body_limit(self, scope: Scope) -> int:
        path = str(scope.get("path", ""))
        if path.startswith(self.options.prefix + "/"):
            return self.options.max_request_bytes
        return self.options.max_api_bytes

    def _refusal(self, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        if not host_allowed(self.options, headers.get("host", "")):
            return JSONResponse({"detail": "unknown Host name for this server"}, 400)
        method = str(scope["method"])
        own = request_origin(str(scope.get("scheme", "http")), headers)
        if method not in _SAFE_METHODS and not self._origin_allowed(headers, own):
            return JSONResponse({"detail": "cross-origin request refused"}, 403)
        port = int(scope.get("server", ("", 0))[1] or 0)
        login = self._login(scope, headers, port)
        if login is not None:
            return login
        authorized = self.access.authorized(headers, scope.get("query_string", b""), port, own)
        if method != "OPTIONS" and not authorized:
            return self._unauthorized(scope)
        length = headers.get("content-length", "")
        limit = self._body_limit(scope)
        if length.isascii() and length.isdigit() and int(length) > limit:
            return JSONResponse(
                {"detail": f"request of {length} bytes exceeds the limit of {limit}"}, 413
            )
        return None

    def _origin_allowed(self, headers: Headers, own: str) -> bool:
        if Access.same_origin(headers, own):
            return True
        origin = headers.get("origin")
        allowed = self.options.cors_origins
        return origin is not None and (origin in allowed or "*" in allowed)

    def _login(self, scope: Scope, headers: Headers, port: int) -> Response | None:
        """``GET /?token=<valid>``: set the cookie and redirect to ``/`` (token out of the URL)."""
        if scope["method"] != "GET" or scope.get("path") != "/":
            return None
        given = self.access.query_token(scope.get("query_string", b""))
        if not self.access.token_ok(given):
            return None
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            cookie_name(port),
            given,
            httponly=True,
            samesite="strict",
            secure=self.options.scheme == "https",
            path="/",
        )
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    def _unauthorized(self, scope: Scope) -> Response:
        if scope.get("path") == "/" and scope["method"] == "GET":
            return HTMLResponse(_LOGIN_PAGE, status_code=401)
        challenges = []
        if self.options.username:
            challenges.append('Basic realm="dicomstation"')
        if self.options.token:
            challenges.append('Bearer realm="dicomstation"')
        challenge = ", ".join(challenges)
        return JSONResponse(
            {"detail": "authentication required"},
            status_code=401,
            headers={"WWW-Authenticate": challenge},
        )
