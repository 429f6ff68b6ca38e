"""OHIF served at ``/viewer/`` of the UI app, and its state at ``/api/ohif`` (see :mod:`.ohif`)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from dicomstation.web.ohif import (
    INSTALL_HINT,
    OHIF_VERSION,
    PREFIX,
    OhifInstall,
    app_config,
    find_ohif,
)

__all__ = ["mount_ohif"]


class _SpaFiles(StaticFiles):
    """Static files of the dist; unknown paths (client-side routes) get index.html."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except StarletteHTTPException as exc:
            if exc.status_code != 404 or "." in path.rsplit("/", 1)[-1]:
                raise
            return await super().get_response("index.html", scope)


def _not_installed_page() -> HTMLResponse:
    body = (
        '<!doctype html><meta charset="utf-8"><title>OHIF not installed</title>'
        "<h1>OHIF is not installed</h1>"
        "<p>Install it with <code>dicomstation viewer install</code> (needs npm), or "
        "<code>make ohif</code> in a source checkout, then restart <code>dicomstation ui</code>."
        '</p><p><a href="/">Back to dicomstation</a></p>'
    )
    return HTMLResponse(body, status_code=404, headers={"Cache-Control": "no-store"})


def mount_ohif(app: FastAPI, dicomweb_prefix: str, root: Path | None = None) -> OhifInstall | None:
    """Serve OHIF at ``/viewer/`` (or a how-to-install page) and its state at ``/api/ohif``."""
    found = find_ohif(root)
    config = app_config(dicomweb_prefix)

    @app.get("/api/ohif", include_in_schema=False)
    def ohif_state() -> JSONResponse:
        state = {"installed": found is not None, "version": OHIF_VERSION, "url": PREFIX + "/"}
        return JSONResponse(state if found else {**state, "hint": INSTALL_HINT})

    @app.get(PREFIX + "/app-config.js", include_in_schema=False)
    def ohif_config() -> Response:
        headers = {"Cache-Control": "no-store"}
        return Response(config, media_type="text/javascript", headers=headers)

    if found is None:

        @app.get(PREFIX, include_in_schema=False)
        @app.get(PREFIX + "/{rest:path}", include_in_schema=False)
        def ohif_missing(rest: str = "") -> HTMLResponse:
            return _not_installed_page()

    else:
        app.mount(PREFIX, _SpaFiles(directory=found.path, html=True), name="ohif")
    return found
