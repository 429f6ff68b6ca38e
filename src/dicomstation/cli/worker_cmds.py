"""``dicomstation worker WORKLIST``: perform segmentation workitems of a UPS-RS worklist.

WORKLIST is a configured DICOMweb server (``dicomstation server add``) whose
root serves UPS-RS: dicomstation's own (``dicomstation ui`` serves it under
``/dicom-web``) or another archive's. Workitems name their source and
destination by a configured server's name (or DICOMweb URL); the segmenter is
this command's option, never the workitem's.
"""

from __future__ import annotations

import json
import threading
from typing import Annotated, Any

import typer

from dicomstation.cli.common import err_console, handle_errors
from dicomstation.errors import ConfigError

__all__ = ["register", "worker"]


def _params(raw: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for entry in raw:
        key, sep, value = entry.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {entry!r}: expected KEY=VALUE")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


@handle_errors
def worker(
    worklist: Annotated[str, typer.Argument(help="Configured DICOMweb server serving UPS-RS.")],
    segmenter: Annotated[
        str, typer.Option("--segmenter", help="Registered segmenter to run.")
    ] = "ct_baseline",
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="Segmenter parameter KEY=VALUE (JSON value; repeatable)."),
    ] = None,
    lease: Annotated[
        float, typer.Option("--lease", min=5, max=3600, help="Seconds a claim holds unrenewed.")
    ] = 120.0,
    poll: Annotated[
        float, typer.Option("--poll", min=0.5, help="Seconds between polls of the worklist.")
    ] = 10.0,
    once: Annotated[
        bool, typer.Option("--once", help="Perform what is claimable now, then exit.")
    ] = False,
    cluster: Annotated[
        str | None,
        typer.Option("--cluster", help="Run each task on Dask: local:N worker processes here."),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler", help="Run each task on a running Dask cluster: tcp://HOST:PORT."
        ),
    ] = None,
) -> None:
    """Claim "segmentation" workitems, segment, send SEG + SR, complete them (Ctrl-C stops)."""
    from dicomstation.auth import http_client  # httpx: imported when the worker starts
    from dicomstation.config import DicomWebServer
    from dicomstation.pipeline.segmenters import make_segmenter
    from dicomstation.pipeline.ups_worker import UpsClient, Worker, WorkerOptions
    from dicomstation.settings import Settings

    settings = Settings.load()
    server = settings.server(worklist)
    if not isinstance(server, DicomWebServer):
        raise ConfigError(f"worklist {worklist!r} is not a DICOMweb server")
    params = _params(param or [])
    make_segmenter(segmenter, params)  # bad names and parameters fail before any claim
    servers = {name: settings.server(name) for name in settings.servers}
    from dicomstation.pipeline.dask_executor import executor_for

    options = WorkerOptions(servers, segmenter, params, lease, executor_for(cluster, scheduler))
    stop = threading.Event()
    with http_client(server) as http:
        performer = Worker(UpsClient(server, http), options, err_console.print)
        err_console.print(f"worker on {worklist} ({server.url}): segmenter {segmenter}")
        while True:
            done = performer.run_once()
            if once or (not done and stop.wait(poll)):
                break


def register(app: typer.Typer) -> None:
    """Add ``worker`` to ``app``."""
    app.command("worker")(worker)
