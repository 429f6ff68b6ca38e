"""``dicomstation demo``: a seeded database served over DICOMweb and configured as a server.

:func:`demo_environment` builds everything in one temporary folder (database,
settings file, sample data) and starts the app on loopback; :func:`run_headless`
then walks the whole flow a user would click through, printing each step.
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

from dicomstation.config import DicomWebServer
from dicomstation.database import Database
from dicomstation.errors import DicomStationError
from dicomstation.export import ExportOptions
from dicomstation.models import Level, Query
from dicomstation.server import RunningServer, ServerOptions, start_in_thread
from dicomstation.settings import Settings
from dicomstation.web.demo_data import PHANTOM_DESCRIPTION, seed_demo
from dicomstation.web.jobs import Job
from dicomstation.web.workstation import Workstation, ref_json

__all__ = ["DEMO_SERVER", "DemoEnvironment", "demo_environment", "run_headless"]

DEMO_SERVER = "demo"
Say = Callable[[str], None]


@dataclass(frozen=True)
class DemoEnvironment:
    """A running demo: its workstation (database + settings) and its server."""

    workstation: Workstation
    server: RunningServer
    folder: Path

    @property
    def url(self) -> str:
        """Where the app is served."""
        return self.server.url


@contextlib.contextmanager
def demo_environment(port: int = 0, say: Say = print) -> Iterator[DemoEnvironment]:
    """Seed a demo database, serve it (UI + DICOMweb) and configure it as server ``demo``."""
    from dicomstation.web.app import create_ui_app

    folder = Path(tempfile.mkdtemp(prefix="dicomstation-demo-"))
    db = Database.open(folder / "database")
    try:
        report = seed_demo(db, folder / "samples")
        say(f"seeded demo database {db.root}: {len(report.succeeded)} instances")
        settings_path = folder / "settings.toml"
        workstation = Workstation(db, settings_path)
        app = create_ui_app(workstation, ServerOptions(port=port))
        server = start_in_thread(app, port=port)
        Settings().with_server(DicomWebServer(DEMO_SERVER, f"{server.url}/dicom-web")).save(
            settings_path
        )
        say(f"serving the UI at {server.url}/ and DICOMweb at {server.url}/dicom-web")
        try:
            yield DemoEnvironment(workstation, server, folder)
        finally:
            server.stop()
    finally:
        db.close()
        shutil.rmtree(folder, ignore_errors=True)


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
    result = ws.viewer.segment(volume.id, "threshold", 300, 3000, [])
    say(
        f"    volume {volume.display.spatial_shape}, mask {result['voxels']} voxels "
        f"= {result['volume_ml']} ml"
    )
    ws.viewer.render(volume.id, "coronal", None, (400, 1800))
    _step(say, "export the segmentation as DICOM SEG into the second database")
    seg_series = ws.viewer.export(
        volume.id, "SEG", ExportOptions(series_description="Bone (demo threshold)")
    )
    say(f"    SEG series {seg_series[0]}")
    return seg_series


def _finished(job: Job, what: str) -> Job:
    if job.state != "done":
        raise DicomStationError(f"{what} {job.state}: {job.message}")
    return job


def run_headless(env: DemoEnvironment, say: Say = print) -> None:
    """Query the demo endpoint, fetch into a second database, load, segment, export, send back.

    Raises
    ------
    DicomStationError
        When any step fails (the CLI turns it into exit code 1).
    """
    with Database.temporary() as second:
        ws = Workstation(second, env.workstation.settings_path)
        started = _step(say, f"QIDO-RS: studies on server {DEMO_SERVER!r}")
        target = _browse(ws, say)
        _step(say, f"WADO-RS: fetch the series into a second database {second.root}")
        items = [(target["study_uid"], [target["series_uid"]])]
        job = _finished(ws.jobs.wait(ws.fetch(DEMO_SERVER, items).id), "fetch")
        say(f"    {job.done} instances, {job.bytes_done / 1e6:.1f} MB in {job.seconds_text()}")
        _step(say, "load the series as a volume and segment bone (threshold 300..3000 HU)")
        seg_series = _process(ws, target["series_uid"], say)
        _step(say, f"STOW-RS: send the SEG back to {DEMO_SERVER!r}")
        _finished(ws.jobs.wait(ws.send(DEMO_SERVER, seg_series).id), "send")
        back = env.workstation.db.find(Query(Level.SERIES, {"Modality": "SEG"}))
        if not back:
            raise DicomStationError("the SEG did not arrive in the demo database")
        say(f"    the demo database now holds SEG series {ref_json(back[0])['series_uid']}")
        say(f"done in {time.perf_counter() - started:.1f} s")
