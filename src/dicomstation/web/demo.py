"""``dicomstation demo``: a seeded demo "PACS" served over DICOMweb, and the UI using it.

:func:`demo_environment` builds everything in one temporary folder: the demo
PACS (a database seeded with pydicom's sample files and a synthetic head CT,
served by :mod:`dicomstation.server` and configured as server ``demo``), the
UI's own empty local database and a settings file. :func:`run_headless` then
walks the flow a user would click through (query, metadata, fetch, load,
segment, export SEG, send back), printing each step.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dicomstation.config import Credentials, DicomWebServer
from dicomstation.database import Database
from dicomstation.errors import DicomStationError
from dicomstation.export import ExportOptions
from dicomstation.models import Level, Query
from dicomstation.server import RunningServer, ServerOptions, create_app, start_in_thread
from dicomstation.settings import Settings
from dicomstation.web.demo_data import PHANTOM_DESCRIPTION, seed_demo
from dicomstation.web.jobs import Job
from dicomstation.web.workstation import Workstation, ref_json

__all__ = ["DEMO_SERVER", "DemoEnvironment", "demo_environment", "run_headless"]

DEMO_SERVER = "demo"
Say = Callable[[str], None]


@dataclass(frozen=True)
class DemoEnvironment:
    """A running demo.

    ``pacs`` is the seeded database, served over DICOMweb by its own server
    (configured as server ``demo``); ``workstation`` is the UI's own, initially
    empty, local database, with the settings file that knows ``demo``.
    """

    workstation: Workstation
    server: RunningServer
    pacs: Database
    pacs_server: RunningServer
    folder: Path
    options: ServerOptions
    pacs_options: ServerOptions

    @property
    def url(self) -> str:
        """Where the UI (and the local database's DICOMweb root) is served."""
        return self.server.url

    @property
    def token(self) -> str:
        """The UI's per-launch token."""
        return self.options.token.reveal()

    @property
    def login_url(self) -> str:
        """The URL to open in a browser (``/?token=...``; sets the UI's cookie)."""
        from dicomstation.web.app import login_url

        return login_url(self.url, self.options)

    @property
    def pacs_url(self) -> str:
        """The DICOMweb root of the demo "PACS"."""
        return f"{self.pacs_server.url}/dicom-web"


@contextlib.contextmanager
def demo_environment(port: int = 0, say: Say = print) -> Iterator[DemoEnvironment]:
    """Seed a demo "PACS", serve it over DICOMweb, and start the UI configured to use it."""
    from dicomstation.web.app import create_ui_app

    folder = Path(tempfile.mkdtemp(prefix="dicomstation-demo-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, folder, ignore_errors=True)
        pacs = stack.enter_context(Database.open(folder / "pacs"))
        report = seed_demo(pacs, folder / "samples")
        pacs_options = ServerOptions(port=0).with_launch_token()
        pacs_server = start_in_thread(create_app(pacs, pacs_options))
        stack.callback(pacs_server.stop)
        say(f"demo PACS: {len(report.succeeded)} instances at {pacs_server.url}/dicom-web")
        settings_path = folder / "settings.toml"
        server_config = DicomWebServer(
            DEMO_SERVER,
            f"{pacs_server.url}/dicom-web",
            Credentials(token=pacs_options.token),  # the demo PACS wants its token too
        )
        Settings().with_server(server_config).save(settings_path)
        local = stack.enter_context(Database.open(folder / "database"))
        workstation = Workstation(local, settings_path)
        options = ServerOptions(port=port).with_launch_token()
        server = start_in_thread(create_ui_app(workstation, options), port=port)
        stack.callback(server.stop)
        say(f"UI at {server.url}/ (local database {local.root}, its DICOMweb at /dicom-web)")
        say(f"settings (server {DEMO_SERVER!r}, DICOMSTATION_CONFIG for `run`): {settings_path}")
        yield DemoEnvironment(workstation, server, pacs, pacs_server, folder, options, pacs_options)


def _step(say: Say, text: str) -> float:
    say(f"- {text}")
    return time.perf_counter()


def _browse(ws: Workstation, say: Say) -> dict[str, Any]:
    """List the demo studies, find the phantom series, read its metadata; return the series."""
    for study in ws.query(DEMO_SERVER, Query(Level.STUDY)):
        say(
            f"    {study['patient_name']:<24} {study['study_date']:<9} "
            f"{','.join(study['modalities']):<8} {study['num_instances']} instances"
        )
    series = ws.query(DEMO_SERVER, Query(Level.SERIES, {"SeriesDescription": "Head*"}))
    if not series:
        raise DicomStationError(f"the demo server has no series {PHANTOM_DESCRIPTION!r}")
    target = series[0]
    metadata = ws.metadata(DEMO_SERVER, target["study_uid"], target["series_uid"])
    say(
        f"    metadata of {target['description']!r}: {len(metadata)} headers, "
        f"{len(metadata[0])} attributes each, no pixel data fetched"
    )
    return target


def _process(ws: Workstation, series_uid: str, say: Say) -> list[str]:
    """Load, threshold bone, render, and export a SEG; return the new series UIDs."""
    volume = ws.viewer.load(series_uid)
    result = ws.segment(volume.id, "threshold", 300, 3000, [])
    say(
        f"    volume {volume.display.spatial_shape}, mask {result['voxels']} voxels "
        f"= {result['volume_ml']} ml"
    )
    ws.viewer.render(volume.id, "coronal", None, (400, 1800))
    _step(say, "export the segmentation as DICOM SEG into the local database")
    options = ExportOptions(series_description="Bone (demo threshold)")
    job = ws.jobs.wait(ws.export(volume.id, "SEG", options, {}).id)  # a ledger job, as in the UI
    seg_series = _finished(job, "export").outputs
    say(f"    SEG series {seg_series[0]}")
    return seg_series


def _finished(job: Job, what: str) -> Job:
    if job.state != "done":
        raise DicomStationError(f"{what} {job.state}: {job.message}")
    return job


def run_headless(env: DemoEnvironment, say: Say = print) -> None:
    """Query the demo PACS, fetch into the local database, load, segment, export, send back.

    Raises
    ------
    DicomStationError
        When any step fails (the CLI turns it into exit code 1).
    """
    ws = env.workstation
    started = _step(say, f"QIDO-RS: studies on server {DEMO_SERVER!r}")
    target = _browse(ws, say)
    _step(say, f"WADO-RS: fetch the series into the local database {ws.db.root}")
    items = [(target["study_uid"], [target["series_uid"]])]
    job = _finished(ws.jobs.wait(ws.fetch(DEMO_SERVER, items).id), "fetch")
    say(f"    {job.done} instances, {job.bytes_done / 1e6:.1f} MB in {job.seconds_text()}")
    _step(say, "load the series as a volume and segment bone (threshold 300..3000 HU)")
    seg_series = _process(ws, target["series_uid"], say)
    _step(say, f"STOW-RS: send the SEG back to {DEMO_SERVER!r}")
    _finished(ws.jobs.wait(ws.send(DEMO_SERVER, seg_series).id), "send")
    back = env.pacs.find(Query(Level.SERIES, {"Modality": "SEG"}))
    if not back:
        raise DicomStationError("the SEG did not arrive in the demo PACS")
    say(f"    the demo PACS now holds SEG series {ref_json(back[0])['series_uid']}")
    say(f"done in {time.perf_counter() - started:.1f} s")
