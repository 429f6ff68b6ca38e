"""HTTP details around every route: error answers, HEAD, Allow, gzip and per-path CORS.

Pure ASGI middlewares (no buffering of streamed answers):

- :class:`ErrorAnswer` turns an unexpected exception into a JSON 500 *inside*
  CORS, so every error answer carries the CORS headers (Starlette's own handler
  sits outside every middleware);
- :class:`HeadAndAllow` answers HEAD wherever GET is served (the GET answer's
  headers, no body) and gives a 405 the ``Allow`` header of every route of the path;
- :class:`JsonGzip` gzips JSON answers (QIDO-RS, metadata) for clients that send
  ``Accept-Encoding: gzip``; multipart and binary answers stream untouched;
- :class:`PathCors` answers CORS preflights with the methods the path really has.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match

from dicomstation.server.public import INTERNAL_ERROR

__all__ = ["ErrorAnswer", "HeadAndAllow", "JsonGzip", "PathCors", "route_methods"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("dicomstation.server")
_GZIP_MIN = 512  # bytes; smaller JSON answers are sent as they are
_GZIP_TYPES = ("application/json", "application/dicom+json")
_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


def route_methods(routes: list[BaseRoute], path: str) -> set[str]:
    """The HTTP methods the routes serve at ``path`` (HEAD wherever GET is)."""
    methods: set[str] = set()
    for method in _METHODS:
        scope = {"type": "http", "path": path, "method": method, "root_path": "", "headers": []}
        if any(route.matches(scope)[0] == Match.FULL for route in routes):
            methods.add(method)
    if "GET" in methods:
        methods.add("HEAD")
    return methods


class ErrorAnswer:
    """An unexpected exception before the answer started: a JSON 500, logged with traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            if started:  # the connection is cut: the client sees an incomplete answer
                raise
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            await JSONResponse({"detail": INTERNAL_ERROR}, 500)(scope, receive, send)


class _HeadDoneError(OSError):
    """Raised into a streaming answer to HEAD once its headers are sent (stops the body)."""


class HeadAndAllow:
    """HEAD served as GET without the body; 405 answers list every method of the path.

    A streamed answer to HEAD is stopped after its headers (as when a client goes
    away), so HEAD on a study does not read the study.
    """

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        if head:
            scope = {**scope, "method": "GET"}
        path = str(scope.get("path", ""))
        ended = False

        async def patched(message: Message) -> None:
            nonlocal ended
            if message["type"] == "http.response.start" and message["status"] == 405:
                headers = MutableHeaders(scope=message)
                headers["Allow"] = ", ".join(sorted(route_methods(self.routes, path)))
            if head and message["type"] == "http.response.body":
                if ended:
                    raise _HeadDoneError("HEAD: the body is not sent")
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                if message.get("more_body", False):
                    raise _HeadDoneError("HEAD: the body is not sent")
                return
            await send(message)

        try:
            await self.app(scope, receive, patched)
        except (_HeadDoneError, ClientDisconnect):
            if not (head and ended):
                raise


def _wants_gzip(headers: Headers) -> bool:
    for entry in headers.get("accept-encoding", "").split(","):
        name, _, params = entry.partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


class _GzipSend:
    """The send of one answer: JSON bodies gzipped (whole or streamed), others untouched."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.start: Message | None = None
        self.compressor: Any = None
        self.passthrough = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = Headers(raw=message.get("headers", []))
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if kind in _GZIP_TYPES and "content-encoding" not in headers:
                self.start = message  # held until the first body tells the size
                return
            self.passthrough = True
        if self.passthrough or message["type"] != "http.response.body":
            await self.send(message)
            return
        await self._body(message)

    async def _body(self, message: Message) -> None:
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if self.start is not None:
            start, self.start = self.start, None
            if not more and len(body) < _GZIP_MIN:
                self.passthrough = True
                await self.send(start)
                await self.send(message)
                return
            await self._start_gzip(start, body, more)
            return
        data = self.compressor.compress(body) + (b"" if more else self.compressor.flush())
        await self.send({"type": "http.response.body", "body": data, "more_body": more})

    async def _start_gzip(self, start: Message, body: bytes, more: bool) -> None:
        self.compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: gzip container
        data = self.compressor.compress(body) + (b"" if more else self.compressor.flush())
        headers = MutableHeaders(scope=start)
        headers["Content-Encoding"] = "gzip"
        headers.add_vary_header("Accept-Encoding")
        if more:
            del headers["Content-Length"]
        else:
            headers["Content-Length"] = str(len(data))
        await self.send(start)
        await self.send({"type": "http.response.body", "body": data, "more_body": more})


class JsonGzip:
    """Gzip JSON answers for clients that accept it (PS3.18 8.2: Content-Encoding)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _wants_gzip(Headers(scope=scope)):
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, _GzipSend(send))


class PathCors:
    """CORS whose preflight answers list only the methods the requested path serves.

    ``allowed`` bounds the methods ever advertised; a path without DELETE routes
    never advertises DELETE.
    """

    def __init__(
        self,
        app: ASGIApp,
        routes: list[BaseRoute],
        allowed: tuple[str, ...],
        options: dict[str, Any],
    ) -> None:
        self.app = app
        self.routes = routes
        self.allowed = frozenset(allowed)
        self.cors = options
        self.simple = CORSMiddleware(app, allow_methods=sorted(self.allowed), **options)
        self.preflights: dict[frozenset[str], CORSMiddleware] = {}

    def _for(self, path: str) -> CORSMiddleware:
        methods = frozenset(route_methods(self.routes, path) & self.allowed)
        found = self.preflights.get(methods)
        if found is None and len(self.preflights) < 64:  # bounded: few distinct sets exist
            found = CORSMiddleware(self.app, allow_methods=sorted(methods), **self.cors)
            self.preflights[methods] = found
        return found or CORSMiddleware(self.app, allow_methods=sorted(methods), **self.cors)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                await self._for(str(scope.get("path", "")))(scope, receive, send)
                return
        await self.simple(scope, receive, send)
