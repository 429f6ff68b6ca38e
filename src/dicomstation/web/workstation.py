"""What the web UI and the demo do, independent of HTTP: servers, browse, fetch, send, export.

Fetch, send and the viewer's exports are pipelines (:mod:`dicomstation.pipeline`)
recorded in the job ledger beside the database, so they survive a restart of the
UI and can be resumed; an export is ``load -> segment -> export`` of the viewed
series (:mod:`dicomstation.pipeline.ui_exports`), so the same export twice gives
back the same objects.

Every remote operation goes through :func:`dicomstation.nodes.open_node`, so a
server's protocol (DICOMweb or DIMSE) never matters here; the local database is
the pseudo-server ``"local"``. Settings are re-read on every call and written with
:class:`~dicomstation.settings.Settings` (0600, atomic); secrets never leave this
module except as ``"set"`` / ``"not set"``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dicomstation.database import Database
from dicomstation.deid.outgoing import outgoing_config
from dicomstation.deid.step import DeidStep
from dicomstation.dicomjson import first_value
from dicomstation.errors import ConfigError, ExportError
from dicomstation.export import ExportOptions
from dicomstation.models import Level, Query
from dicomstation.nodes import DicomNode, open_node
from dicomstation.nodes.local import LocalNode
from dicomstation.pipeline import (
    LEDGER_NAME,
    FetchStep,
    ItemsSource,
    Pipeline,
    RunOptions,
    RunSettings,
    SendStep,
    Step,
    WorkItem,
)
from dicomstation.pipeline.exports import export_kind
from dicomstation.pipeline.ui_exports import ViewerExport, export_pipeline
from dicomstation.settings import Settings
from dicomstation.volumes import examine
from dicomstation.web import servers
from dicomstation.web.jobs import Job, JobRegistry
from dicomstation.web.scenes import display_to_source, open_scene
from dicomstation.web.servers import LOCAL, public_server
from dicomstation.web.viewer import Viewer, ViewerVolume

__all__ = ["LOCAL", "Workstation", "public_server", "ref_json"]

Seed = tuple[float, float, float]


def ref_json(ref: Any) -> dict[str, Any]:
    """A ref's fields as JSON (the raw DICOM JSON left out)."""
    data = {k: v for k, v in asdict(ref).items() if k != "json"}
    data["level"] = type(ref).__name__.removesuffix("Ref").lower()
    return data


def _check_default_loadable(db: Database, item: ViewerVolume) -> None:
    """ExportError when the viewed volume is not what the export job's load step loads.

    The job loads the series' best loadable again; another loadable the user chose
    (an echo, the phase image...) would be exported wrongly, so it is refused.
    """
    series = item.loaded.series_instance_uid
    found = examine(db.series_files(series))
    if len(found) > 1 and found[0].name != item.loaded.name:
        raise ExportError(
            f"series {series}: the viewed loadable {item.loaded.name!r} is not the series' "
            f"default ({found[0].name!r}); exports load the default, so export from it"
        )


def _last_seed_mm(item: ViewerVolume, seeds: Sequence[Sequence[float]]) -> list[float] | None:
    """The last seed (display indices) in LPS mm: a bundle keeps it as its cursor."""
    if not seeds:
        return None
    point = item.display.map_indices_to_reference(np.array([seeds[-1]], dtype=float))[0]
    return [float(v) for v in point]


@dataclass
class Workstation:
    """The state behind one UI: the database, the settings file, jobs and loaded volumes."""

    db: Database
    settings_path: Path
    jobs: JobRegistry = field(init=False)
    viewer: Viewer = field(init=False)
    #: How each viewer volume's mask was made: (segmenter, parameters), by volume id.
    segmented: dict[str, tuple[str, dict[str, Any]]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.jobs = JobRegistry(self.db.root / LEDGER_NAME)
        self.viewer = Viewer(self.db)

    # -- settings ----------------------------------------------------------------------
    def settings(self) -> Settings:
        """The settings as saved now."""
        return Settings.load(self.settings_path)

    def servers(self) -> list[dict[str, Any]]:
        """Every configured server (secrets masked), plus the local database."""
        local = {"name": LOCAL, "protocol": "local", "url": str(self.db.root)}
        return [local, *servers.list_servers(self.settings_path)]

    def save_server(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Add or change a server (see :func:`dicomstation.web.servers.save_server`)."""
        return servers.save_server(self.settings_path, name, body)

    def delete_server(self, name: str) -> None:
        """Forget a server."""
        servers.delete_server(self.settings_path, name)

    def auth(self) -> dict[str, str]:
        """Global DICOMweb credentials, masked."""
        return servers.auth_state(self.settings_path)

    def save_auth(self, body: Mapping[str, Any]) -> dict[str, str]:
        """Change the global credentials (see :func:`dicomstation.web.servers.save_auth`)."""
        return servers.save_auth(self.settings_path, body)

    # -- browse ------------------------------------------------------------------------
    @contextlib.contextmanager
    def node(self, name: str) -> Iterator[DicomNode]:
        """The node for a server name (``local`` is the database); closed afterwards."""
        settings = self.settings()
        node = (
            LocalNode(self.db)
            if name == LOCAL
            else open_node(settings.server(name), local=settings.local)
        )
        try:
            yield node
        finally:
            node.close()

    def query(self, name: str, query: Query) -> list[dict[str, Any]]:
        """Studies, series or instances matching ``query`` on a server."""
        with self.node(name) as node:
            return [ref_json(r) for r in node.find(query)]

    def metadata(self, name: str, study: str, series: str | None) -> list[Mapping[str, Any]]:
        """Headers of a series (or study) without fetching its files."""
        with self.node(name) as node:
            return node.metadata(study, series)

    def thumbnail(self, name: str, study: str, series: str) -> bytes | None:
        """A JPEG thumbnail of a series when the server can render one, else None."""
        with self.node(name) as node:
            rendered = getattr(node, "rendered", None)
            if rendered is None:
                return None
            data: bytes = rendered(study, series, thumbnail=True, media_type="image/jpeg")
            return data

    # -- transfer (pipelines in the job ledger) -----------------------------------------
    def run_options(self, pipeline: Pipeline) -> RunOptions:
        """Run options for a UI job: this database, the servers the pipeline names."""
        settings = self.settings()
        names = [n for n in pipeline.server_names() if n != LOCAL]
        servers = {name: settings.server(name) for name in names}
        return RunOptions(database=self.db.root, servers=servers, local=settings.local)

    def _start(self, title: str, items: Sequence[WorkItem], *steps: Step) -> Job:
        stamp = time.strftime("%H:%M:%S")  # each click is its own job, resumable by id
        pipeline = Pipeline(
            f"{title} ({stamp})", ItemsSource(tuple(items)), tuple(steps), RunSettings(2, 2)
        )
        return self.jobs.start_pipeline(pipeline, self.run_options(pipeline))

    def fetch(self, name: str, items: Sequence[tuple[str, Sequence[str]]]) -> Job:
        """Start fetching studies / series (study UID, series UIDs) into the database."""
        if name != LOCAL:
            self.settings().server(name)  # an unknown server fails now, not in the job
        work = [WorkItem(study, tuple(series)) for study, series in items]
        count = sum(max(1, len(s)) for _study, s in items)
        return self._start(f"fetch {count} item(s) from {name}", work, FetchStep("fetch", name))

    def send(self, name: str, uids: Sequence[str], *, deid: bool = False) -> Job:
        """Start sending local studies / series to a server (de-identified first if ``deid``).

        With ``deid`` the job is ``deid`` then ``send what="deid"``: the settings' project
        key (checked now), the de-identified copies kept in the database (same UIDs on resend).
        """
        settings = self.settings()
        settings.server(name)
        work = [self._item_of(uid) for uid in uids]
        count = sum(len(self.db.files_of(uid)) for uid in uids)
        if not deid:
            step = SendStep("send", name, what="item")
            return self._start(f"send {count} instance(s) to {name}", work, step)
        outgoing_config(settings.deid_key)  # no key: a clear error now, not in the job
        steps = (
            DeidStep("deid", settings_file=str(self.settings_path)),
            SendStep("send", name, what="deid"),
        )
        return self._start(f"send {count} de-identified instance(s) to {name}", work, *steps)

    def _item_of(self, uid: str) -> WorkItem:
        level = self.db.level_of(uid)
        if level is Level.STUDY:
            return WorkItem(uid)
        if level is not Level.SERIES:
            raise ConfigError(f"{uid} is an instance; select its series or study to send")
        return WorkItem(first_value(self.db.headers_of(uid)[0], "StudyInstanceUID"), (uid,))

    def resume(self, job_id: str) -> Job:
        """Resume a job of the ledger (after a restart, a cancel or failures)."""
        return self.jobs.resume(job_id, self.run_options)

    # -- viewer: segment, export (ledger jobs), scenes ---------------------------------
    def segment(
        self, volume_id: str, method: str, low: float, high: float, seeds: list[Seed]
    ) -> dict[str, Any]:
        """Segment in the viewer, remembering how (an export job repeats it)."""
        result = self.viewer.segment(volume_id, method, low, high, seeds)
        params: dict[str, Any] = {"threshold": [low, high]}
        if method == "region_grow":
            display = self.viewer.get(volume_id).display
            points = display.map_indices_to_reference(np.array(seeds, dtype=float))
            params["seeds_mm"] = [[float(v) for v in p] for p in points]
        self.segmented[volume_id] = (method, params)
        return result

    def export(
        self, volume_id: str, kind: str, options: ExportOptions, shown: Mapping[str, Any]
    ) -> Job:
        """Start exporting the viewed series (``kind``) as a ledger job.

        ``shown`` is what the viewer shows: ``view``, ``index`` (display slice),
        ``window``; and a derived series' filter (``smooth_mm``, ``median``).
        """
        item = self.viewer.get(volume_id)
        _check_default_loadable(self.db, item)
        spec = export_kind(kind)
        made = self.segmented.get(volume_id) if item.mask is not None else None
        if item.mask is not None and made is None:
            raise ExportError(f"the mask of {item.loaded.series_instance_uid} cannot be exported")
        axis, index = display_to_source(
            item, str(shown.get("view", "axial")), shown.get("index") or 0
        )
        window = shown.get("window")
        params: dict[str, Any] = {}
        if spec.name == "sc":
            params = {"axis": axis, "index": index, "window": window, "overlay": False}
        elif spec.name == "bundle":
            params = {"layout": "axial", "slice_axis": axis, "index": index, "window": window}
            params["cursor_mm"] = _last_seed_mm(item, shown.get("seeds") or [])
        elif spec.name in ("derived", "pm"):
            params = {k: shown[k] for k in ("smooth_mm", "median", "spacing") if shown.get(k)}
        export = ViewerExport(
            item.loaded.study_instance_uid,
            item.loaded.series_instance_uid,
            (spec.name,),
            options,
            made[0] if made else None,
            made[1] if made else {},
            {spec.name: params},
        )
        pipeline = export_pipeline(export)
        return self.jobs.start_pipeline(pipeline, self.run_options(pipeline))

    def open_scene(self, bundle_uid: str) -> dict[str, Any]:
        """Reopen a scene bundle in the viewer: its volume, mask, window and slice."""
        item, restored = open_scene(self.viewer, bundle_uid)
        if item.mask is not None:
            self.segmented[item.id] = ("scene", {"bundle_uid": bundle_uid, "index": 0})
        return {**item.info(), "scene": restored}

    def delete(self, uid: str) -> int:
        """Delete a study, series or instance from the local database."""
        return self.db.delete(uid)

    def series_of(self, study: str) -> list[dict[str, Any]]:
        """Local series of a study (for the viewer's series picker)."""
        return [ref_json(r) for r in self.db.find(Query(Level.SERIES, study_uid=study))]
