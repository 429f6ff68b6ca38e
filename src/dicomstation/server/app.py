"""The DICOMweb server over the local database: one router, one app, safe defaults.

``dicomweb_router(ctx)`` holds QIDO-RS, WADO-RS (instances, metadata, frames,
bulk data, rendered, thumbnails) and STOW-RS; the web UI mounts it under its own
app, and :func:`create_app` wraps it alone (with auth, limits and CORS) for
``dicomstation serve``-style use and tests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware

from dicomstation.database import Database
from dicomstation.errors import (
    CancelledError,
    ConfigError,
    DicomStationError,
    ExportError,
    InvalidDicomError,
    LoadError,
    NodeError,
    NotFoundError,
    ProcessingError,
)
from dicomstation.server.context import ServerContext
from dicomstation.server.frames import frames_router
from dicomstation.server.options import ServerOptions, is_loopback
from dicomstation.server.qido import qido_router
from dicomstation.server.render import render_router
from dicomstation.server.stow import stow_router
from dicomstation.server.wado import wado_router

__all__ = ["create_app", "dicomweb_router", "install_security"]

Handler = Callable[[Request], Awaitable[Response]]
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


def dicomweb_router(ctx: ServerContext) -> APIRouter:
    """Every DICOMweb route, relative to the DICOMweb root."""
    router = APIRouter()
    # QIDO first: '/studies/{study}/series' must not be taken for a series retrieve.
    for part in (qido_router, wado_router, frames_router, render_router, stow_router):
        router.include_router(part(ctx))
    return router


def _status(exc: DicomStationError) -> int:
    """HTTP status for an error of the package (one place, every error class mapped)."""
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, InvalidDicomError | ConfigError):
        return 400
    if isinstance(exc, LoadError | ProcessingError | ExportError):
        return 422
    if isinstance(exc, CancelledError):
        return 409
    if isinstance(exc, NodeError):
        return 502  # the remote server failed; the message names it
    return 500


def install_security(app: FastAPI, options: ServerOptions) -> None:
    """Auth on every request, a Content-Length limit, loopback Host names only when bound
    to loopback, CORS (off unless origins given), and errors of the package turned into
    JSON answers with a clear ``detail``."""
    options.check()

    @app.middleware("http")
    async def guard(request: Request, call_next: Handler) -> Response:
        if request.method != "OPTIONS" and not options.authorized(
            request.headers.get("authorization")
        ):
            return JSONResponse(
                {"detail": "authentication required"},
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="dicomstation"'},
            )
        length = request.headers.get("content-length", "")
        if length.isascii() and length.isdigit() and int(length) > options.max_request_bytes:
            return JSONResponse(
                {
                    "detail": f"request of {length} bytes exceeds the limit of "
                    f"{options.max_request_bytes}"
                },
                status_code=413,
            )
        return await call_next(request)

    @app.exception_handler(DicomStationError)
    async def package_error(_request: Request, exc: DicomStationError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=_status(exc))

    if is_loopback(options.host):
        # DNS rebinding: a web page whose name resolves to 127.0.0.1 must not reach us.
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_NAMES))
    if options.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(options.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["*"],
            expose_headers=["Content-Location", "Warning"],
        )


def create_app(db: Database, options: ServerOptions | None = None) -> FastAPI:
    """A FastAPI app serving ``db`` over DICOMweb at ``options.prefix``.

    Raises
    ------
    ConfigError
        When the options are unsafe (bound beyond loopback without auth).
    """
    options = options or ServerOptions()
    app = FastAPI(title="dicomstation DICOMweb", docs_url=None, redoc_url=None)
    install_security(app, options)
    app.include_router(dicomweb_router(ServerContext(db, options)), prefix=options.prefix)
    return app
