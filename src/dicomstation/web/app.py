"""The web UI app: static page, JSON API for it, and DICOMweb over the local database.

``dicomstation ui`` serves this app with uvicorn; everything (JavaScript, CSS)
is in ``web/static`` and nothing is loaded from a CDN, so it works offline.
Every request needs the launch token (see :mod:`dicomstation.server.access`):
the browser gets it once through the login URL ``/?token=...`` and then sends
an HttpOnly SameSite=Strict cookie that only same-origin pages can use.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from dicomstation.server import ServerContext, ServerOptions, dicomweb_router, install_security
from dicomstation.web.api_browse import browse_router
from dicomstation.web.api_pipelines import pipelines_router
from dicomstation.web.api_tasks import tasks_router, viewer_router
from dicomstation.web.ohif_mount import mount_ohif
from dicomstation.web.viewer_loadables import loadables_router
from dicomstation.web.viewer_meta import meta_router
from dicomstation.web.viewer_rt_api import rt_router
from dicomstation.web.viewer_seg import seg_router
from dicomstation.web.workstation import Workstation

__all__ = ["STATIC", "create_ui_app", "login_url"]

STATIC = Path(__file__).resolve().parent / "static"


def login_url(root: str, options: ServerOptions) -> str:
    """The URL to open in a browser: ``root/?token=...`` when a token is required."""
    root = root.rstrip("/")
    return f"{root}/?token={options.token.reveal()}" if options.token else f"{root}/"


def create_ui_app(ws: Workstation, options: ServerOptions | None = None) -> FastAPI:
    """The UI, its API under ``/api`` and DICOMweb under ``options.prefix``.

    Without options a per-launch token is generated (``app.state.options.token``);
    pass ``ServerOptions()`` explicitly (``--no-token``) for an open loopback UI.

    Raises
    ------
    ConfigError
        When the options are unsafe (bound beyond loopback without auth...).
    """
    options = options or ServerOptions().with_launch_token()
    app = FastAPI(title="dicomstation", docs_url=None, redoc_url=None)
    app.state.options = options
    install_security(app, options)
    app.include_router(dicomweb_router(ServerContext(ws.db, options)), prefix=options.prefix)
    app.include_router(browse_router(ws), prefix="/api")
    app.include_router(tasks_router(ws), prefix="/api")
    app.include_router(viewer_router(ws), prefix="/api")
    app.include_router(pipelines_router(ws), prefix="/api")
    app.include_router(meta_router(), prefix="/api")
    app.include_router(seg_router(ws), prefix="/api")
    app.include_router(loadables_router(ws), prefix="/api")
    app.include_router(rt_router(ws), prefix="/api")
    mount_ohif(app, options.prefix)  # OHIF at /viewer/ on this origin (or how to install it)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    return app
