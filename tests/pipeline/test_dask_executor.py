"""The Dask executor on a real LocalCluster (2 worker processes), real Orthancs, our server.

A cohort of 20 small synthetic CT studies goes fetch -> load -> segment -> export
SEG + SR -> send. The destination Orthanc's REST API must then hold, per source
study, exactly one SEG and one SR instance; the ledger must say every item is done.
One test SIGKILLs a worker process in the middle of the run.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
import tomli_w
from typer.testing import CliRunner

from dicomstation.cli.main import app
from dicomstation.config import Credentials, DicomWebServer, Secret
from dicomstation.database import Database
from dicomstation.errors import ConfigError
from dicomstation.pipeline import Ledger, Pipeline, RunOptions, RunReport, RunStatus, StepState
from dicomstation.pipeline.dask_executor import DaskExecutor, executor_for
from dicomstation.pipeline.step import StepContext, register_step
from dicomstation.server import RunningServer, ServerOptions, create_app, start_in_thread
from dicomstation.settings import Settings
from tests.peers import OrthancServer, start_orthanc
from tests.synth import write_ct_series

distributed = pytest.importorskip("distributed")

pytestmark = [pytest.mark.orthanc, pytest.mark.timeout(300)]

STUDIES = 20
SLICES = 8


def _orthanc_config(server: OrthancServer, name: str) -> DicomWebServer:
    creds = Credentials(username=server.user, password=Secret(server.password))
    return DicomWebServer(name=name, url=server.dicomweb_url, credentials=creds)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """20 studies of one 8-slice 64x64 CT series each, as files."""
    root = tmp_path_factory.mktemp("cohort")
    studies: dict[str, list[Path]] = {}
    for n in range(STUDIES):
        study = f"1.2.826.0.1.3680043.8.498.77{n + 1}"
        studies[study] = write_ct_series(
            root / str(n),
            SLICES,
            size=64,
            study_uid=study,
            series_uid=f"{study}.1",
            patient_id=f"DASK{n}",
        )
    return studies


@pytest.fixture(scope="module")
def source(orthanc: OrthancServer, cohort: dict[str, list[Path]]) -> OrthancServer:
    """The session Orthanc holding the cohort (and nothing else)."""
    orthanc.clear()
    orthanc.upload(*(p for paths in cohort.values() for p in paths))
    return orthanc


@pytest.fixture()
def destination(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """A second, empty Orthanc that receives the results."""
    server = start_orthanc(tmp_path_factory.mktemp("dest"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A real LocalCluster of 2 worker processes on loopback (no dashboard)."""
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        scheduler_kwargs={"dashboard": False},
    ) as running:
        yield running


def _pipeline(source_server: str, workspace: str = "temporary") -> Pipeline:
    return Pipeline.from_dict(
        {
            "name": f"dask-{source_server}-{workspace}",
            "source": {"kind": "query", "server": source_server, "level": "study"},
            "steps": [
                {"kind": "fetch", "name": "fetch", "server": source_server},
                {"kind": "load", "name": "load"},
                {
                    "kind": "segment",
                    "name": "segment",
                    "segmenter": "threshold",
                    "params": {"threshold": [0, 3000]},
                },
                {"kind": "export", "name": "export", "kinds": ["seg", "sr"]},
                {"kind": "send", "name": "send", "server": "dest"},
            ],
            "run": {"workspace": workspace, "attempts": 3},
        }
    )


def _results_by_study(dest: OrthancServer) -> dict[str, dict[str, int]]:
    """{study UID: {modality: instance count}} of SEG/SR series on the destination."""
    found: dict[str, dict[str, int]] = {}
    with dest.rest() as rest:
        for series_id in rest.get("/series").json():
            series = rest.get(f"/series/{series_id}").json()
            modality = series["MainDicomTags"].get("Modality", "")
            study = rest.get(f"/studies/{series['ParentStudy']}").json()
            uid = study["MainDicomTags"]["StudyInstanceUID"]
            counts = found.setdefault(uid, {})
            counts[modality] = counts.get(modality, 0) + len(series["Instances"])
    return found


def _check_results(
    report: RunReport,
    options: RunOptions,
    pipeline: Pipeline,
    dest: OrthancServer,
    studies: set[str],
) -> None:
    assert report.ok, report.failed
    assert report.done == len(studies)
    found = _results_by_study(dest)
    assert set(found) == studies
    for uid, counts in found.items():
        assert counts == {"SEG": 1, "SR": 1}, (uid, counts)
    with Ledger.open(options.ledger_path) as ledger:
        states = {i.item.key: i.state for i in ledger.items(pipeline.job_id)}
    assert states == dict.fromkeys(studies, StepState.DONE)


def test_cli_local_cluster_from_orthanc(
    source: OrthancServer,
    destination: OrthancServer,
    cohort: dict[str, list[Path]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`dicomstation run --cluster local:2` starts its own LocalCluster; SEG and SR arrive once."""
    pipeline = _pipeline("src")
    settings_file = tmp_path / "settings.toml"
    monkeypatch.setenv("DICOMSTATION_CONFIG", str(settings_file))
    monkeypatch.setenv("DICOMSTATION_DB", str(tmp_path / "db"))
    servers = {"src": _orthanc_config(source, "src"), "dest": _orthanc_config(destination, "dest")}
    Settings(servers=servers).save(settings_file)
    definition = tmp_path / "cohort.toml"
    definition.write_text(tomli_w.dumps(pipeline.to_dict()), encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(definition), "--cluster", "local:2", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["done"], summary["failed"]) == (STUDIES, {})
    options = RunOptions(tmp_path / "db")
    report = RunReport(summary["job"], STUDIES, summary["done"], {}, 0, False)
    _check_results(report, options, Pipeline.from_file(definition), destination, set(cohort))
    again = Pipeline.from_file(definition).run(replace(options, servers=servers, cluster="local:1"))
    assert (again.done, again.already_done) == (0, STUDIES)  # the same job: nothing to do


def test_worker_sigkill_from_our_server(
    cohort: dict[str, list[Path]],
    destination: OrthancServer,
    cluster: Any,
    tmp_path: Path,
) -> None:
    """Source: our DICOMweb server; one worker is SIGKILLed mid-run; nothing is duplicated."""
    with Database.temporary() as served:
        assert served.import_path([p for paths in cohort.values() for p in paths]).ok
        running = start_in_thread(create_app(served, ServerOptions(port=0)))
        try:
            _run_with_kill(running, destination, cohort, cluster, tmp_path)
        finally:
            running.stop()


def _run_with_kill(
    running: RunningServer,
    destination: OrthancServer,
    cohort: dict[str, list[Path]],
    cluster: Any,
    tmp_path: Path,
) -> None:
    pipeline = _pipeline("ours", workspace="shared")
    servers = {
        "ours": DicomWebServer(name="ours", url=f"{running.url}/dicom-web"),
        "dest": _orthanc_config(destination, "dest"),
    }
    with distributed.Client(cluster) as client:
        pids: dict[str, int] = client.run(os.getpid)
        killed: dict[str, Any] = {}
        seen: list[RunStatus] = []

        def kill_once(status: RunStatus) -> None:
            seen.append(status)
            if killed or status.done < 4:
                return
            processing = client.processing()
            victim = next((w for w, keys in processing.items() if keys), None)
            if victim is None:  # both workers between items right now: the next update
                return
            killed.update(worker=victim, pid=pids[victim], tasks=list(processing[victim]))
            os.kill(pids[victim], signal.SIGKILL)

        options = RunOptions(
            tmp_path / "db",
            servers,
            executor=DaskExecutor(cluster.scheduler_address),
            progress=kill_once,
        )
        Database.open(options.database).close()
        report = pipeline.run(options)
        assert killed and killed["tasks"], "the kill did not hit a running task"
        assert any(s.running for s in seen), "no live step events came from the workers"
        _check_results(report, options, pipeline, destination, set(cohort))
        assert not _alive(killed["pid"])
        client.wait_for_workers(2, timeout=60)  # the nanny replaced the killed worker
        assert killed["pid"] not in client.run(os.getpid).values()


def _alive(pid: int) -> bool:
    """Whether ``pid`` still exists after its parent (the nanny) had 10 s to reap it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    return True


def test_executor_for_checks_options() -> None:
    assert executor_for(None, None) is None
    assert executor_for("local:3", None).workers_wanted == 3  # type: ignore[union-attr]
    assert executor_for(None, "tcp://127.0.0.1:8786").address == "tcp://127.0.0.1:8786"  # type: ignore[union-attr]
    for cluster, scheduler in (
        ("local:0", None),
        ("remote", None),
        (None, "127.0.0.1:8786"),
        ("local:2", "tcp://127.0.0.1:1"),
    ):
        with pytest.raises(ConfigError):
            executor_for(cluster, scheduler)


# -- a poison item that kills its worker every time ------------------------------------------
POISON = "1.2.826.0.1.3680043.8.498.666"


@dataclass(frozen=True)
class _KillerStep:
    """Kills the worker process on the poison item; does nothing for the others."""

    kind: ClassVar[str] = "test-killer"
    memory_only: ClassVar[bool] = False
    name: str

    def run(self, ctx: StepContext) -> tuple[str, ...]:
        if ctx.item.study_uid == POISON:
            os.kill(os.getpid(), signal.SIGKILL)
        return (ctx.item.study_uid,)

    def restore(self, ctx: StepContext, outputs: tuple[str, ...]) -> None:
        """Nothing to restore."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name}


register_step(_KillerStep.kind, lambda name, table: _KillerStep(name))


class _RegisterKiller(distributed.WorkerPlugin):  # type: ignore[misc]
    """Unpickling this on a worker (also a restarted one) imports this module: the step exists."""


def test_item_killing_its_worker_fails_after_attempts_and_the_run_goes_on(tmp_path: Path) -> None:
    items = [f"1.2.826.0.1.3680043.8.498.55{n}" for n in range(6)]
    items.insert(2, POISON)
    pipeline = Pipeline.from_dict(
        {
            "name": "poison",
            "source": {"kind": "items", "items": items},
            "steps": [{"kind": _KillerStep.kind, "name": "work"}],
            "run": {"workspace": "temporary", "attempts": 2},
        }
    )
    with DaskExecutor("local:2", dashboard=False, attempts=2) as executor:
        executor.start().register_plugin(_RegisterKiller())
        report = pipeline.run(RunOptions(tmp_path / "db", executor=executor))
    assert set(report.failed) == {POISON}
    assert POISON in report.failed[POISON] and "died" in report.failed[POISON]
    assert report.done == len(items) - 1
    with Ledger.open(tmp_path / "db" / "jobs.sqlite") as ledger:
        states = {i.item.key: i.state for i in ledger.items(pipeline.job_id)}
    assert states.pop(POISON) is StepState.FAILED
    assert set(states.values()) == {StepState.DONE}
