"""The DICOMweb server over the local database: one router, one app, safe defaults.

``dicomweb_router(ctx)`` holds QIDO-RS, WADO-RS (instances, metadata, frames,
bulk data, rendered, thumbnails) and STOW-RS; the web UI mounts it under its own
app, and :func:`create_app` wraps it alone (with auth, limits and CORS) for
``dicomstation serve``-style use and tests.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

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
from dicomstation.server.guard import Guard
from dicomstation.server.options import ServerOptions
from dicomstation.server.protocol import ErrorAnswer, HeadAndAllow, JsonGzip, PathCors
from dicomstation.server.public import INTERNAL_ERROR, public_text
from dicomstation.server.qido import qido_router
from dicomstation.server.render import render_router
from dicomstation.server.stow import stow_router
from dicomstation.server.wado import wado_router

__all__ = ["create_app", "dicomweb_router", "install_security"]

log = logging.getLogger("dicomstation.server")


def dicomweb_router(ctx: ServerContext) -> APIRouter:
    """Every DICOMweb route, relative to the DICOMweb root."""
    router = APIRouter()
    # QIDO first: '/studies/{study}/series' must not be taken for a series retrieve.
    for part in (qido_router, wado_router, frames_router, render_router, stow_router):
        router.include_router(part(ctx))
    from dicomstation.server.ups import ups_router  # UPS-RS worklist (issue 17)
    from dicomstation.server.ups_store import UPS_NAME, UpsStore

    router.include_router(ups_router(ctx, UpsStore(ctx.db.root / UPS_NAME)))
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


def _add_middlewares(app: FastAPI, options: ServerOptions) -> None:
    """Guard innermost, then HEAD/Allow, gzip, error answers, and CORS outermost."""
    app.add_middleware(Guard, options=options)
    app.add_middleware(HeadAndAllow, routes=app.router.routes)
    app.add_middleware(JsonGzip)
    app.add_middleware(ErrorAnswer)  # inside CORS: a 500 carries the CORS headers too
    if options.cors_origins:  # outermost: preflights answered, refusals carry CORS headers
        app.add_middleware(
            PathCors,
            routes=app.router.routes,
            allowed=("GET", "HEAD", "POST", "PUT", "DELETE"),
            options={
                "allow_origins": list(options.cors_origins),
                "allow_headers": ["Authorization", "Content-Type", "Accept", "Accept-Encoding"],
                "expose_headers": ["Content-Location", "Content-Encoding", "Warning", "Allow"],
            },
        )


def install_security(app: FastAPI, options: ServerOptions) -> None:
    """Guard every request (:class:`~dicomstation.server.guard.Guard`: Host, origin,
    credentials, body size and pace), add CORS (off unless origins given; preflights
    list the path's own methods), HEAD, gzip for JSON and Allow on 405
    (:mod:`~dicomstation.server.protocol`), and turn errors into JSON answers, all
    carrying the CORS headers, whose ``detail`` names no path, pid or internals.

    Raises
    ------
    ConfigError
        When the options are unsafe (see :meth:`ServerOptions.check`).
    """
    options.check()

    @app.exception_handler(DicomStationError)
    async def package_error(request: Request, exc: DicomStationError) -> JSONResponse:
        status = _status(exc)
        if status >= 500 and status != 502:
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
            return JSONResponse({"detail": INTERNAL_ERROR}, status_code=status)
        return JSONResponse({"detail": public_text(str(exc))}, status_code=status)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "%s %s failed: %r", request.method, request.url.path, exc
        )  # uvicorn logs the traceback
        return JSONResponse({"detail": INTERNAL_ERROR}, status_code=500)

    _add_middlewares(app, options)


def create_app(db: Database, options: ServerOptions | None = None) -> FastAPI:
    """A FastAPI app serving ``db`` over DICOMweb at ``options.prefix``.

    Without options it serves loopback with no credentials (a library default;
    ``dicomstation ui`` always adds a per-launch token).

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
