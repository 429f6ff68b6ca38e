"""`dicomstation worker`'s engine against our UPS-RS server and a real Orthanc: racing workers,
a worker killed mid-task, the SEG and SR arriving in Orthanc."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

from dicomstation.auth import http_client
from dicomstation.config import Credentials, DicomWebServer, Secret
from dicomstation.pipeline.ups_worker import (
    UpsClient,
    Worker,
    WorkerOptions,
    parse_workitem,
    segmentation_workitem,
)
from tests.peers import OrthancServer
from tests.synth import ct_dataset
from tests.ups.conftest import TOKEN, UpsServer

pytestmark = pytest.mark.orthanc
PARAMS = {"min_lung_ml": 0.1, "min_bone_ml": 0.05}


def _phantom(size: int, index: int) -> np.ndarray:
    """Stored values (intercept -1024): air, a soft-tissue disc, two lungs, a bone core."""
    yy, xx = np.mgrid[0:size, 0:size]
    c = size / 2
    out = np.full((size, size), 24, dtype=np.int16)
    out[np.hypot(yy - c, xx - c) < size / 2.5] = 1064
    for dx in (-size / 5, size / 5):
        out[np.hypot(yy - c, xx - c - dx) < size / 10] = 174
    out[np.hypot(yy - c - size / 4, xx - c) < 4] = 1724
    return out + index % 2


def _upload_study(orthanc: OrthancServer, tmp: Path, size: int = 40, count: int = 6) -> str:
    study, series = generate_uid(), generate_uid()
    paths = []
    for i in range(count):
        ds = ct_dataset(i, study_uid=study, series_uid=series, size=size, pixels=_phantom(size, i))
        path = tmp / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    orthanc.upload(*paths)
    return study


def _workitem(study: str) -> list[dict]:
    return segmentation_workitem(study, "pacs", "pacs")


def _post(ups: UpsServer, study: str) -> str:
    with ups.client() as http:
        answer = http.post("/workitems", json=_workitem(study))
        assert answer.status_code == 201, answer.text
        return answer.headers["Location"].rsplit("/", 1)[1]


def _worklist(ups: UpsServer) -> DicomWebServer:
    return DicomWebServer("worklist", ups.root, Credentials(token=Secret(TOKEN)))


def _worker(ups: UpsServer, orthanc: OrthancServer, log: list[str], **kw: object) -> Worker:
    creds = Credentials(username=orthanc.user, password=Secret(orthanc.password))
    pacs = DicomWebServer("pacs", orthanc.dicomweb_url, creds)
    worklist = _worklist(ups)
    options = WorkerOptions({"pacs": pacs}, params=PARAMS, **kw)  # type: ignore[arg-type]
    return Worker(UpsClient(worklist, http_client(worklist)), options, log.append)


def _state(ups: UpsServer, uid: str) -> dict:
    with ups.client() as http:
        return http.get(f"/workitems/{uid}").json()[0]


def _orthanc_modalities(orthanc: OrthancServer, study: str) -> list[str]:
    with orthanc.rest() as rest:
        found = rest.get(f"/dicom-web/studies/{study}/series").json()
    return sorted(s["00080060"]["Value"][0] for s in found)


def test_two_workers_race_and_each_workitem_is_done_once(
    ups_server: UpsServer, clean_orthanc: OrthancServer, tmp_path: Path
) -> None:
    studies = [_upload_study(clean_orthanc, tmp_path) for _ in range(3)]
    uids = [_post(ups_server, s) for s in studies]
    logs: list[list[str]] = [[], []]
    workers = [_worker(ups_server, clean_orthanc, logs[i]) for i in range(2)]
    counts = [0, 0]

    def run(i: int) -> None:
        counts[i] = workers[i].run_once()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sum(counts) == 3, logs
    claimed = [line.split()[-1] for log in logs for line in log if line.startswith("claimed")]
    assert sorted(claimed) == sorted(uids)  # each claimed once, by one worker
    for uid, study in zip(uids, studies, strict=True):
        item = _state(ups_server, uid)
        assert item["00741000"]["Value"] == ["COMPLETED"], logs
        out = item["00404033"]["Value"][0]
        assert out["0020000D"]["Value"] == [study]
        assert len(out["00081199"]["Value"]) == 2  # SEG + SR
        assert _orthanc_modalities(clean_orthanc, study) == ["CT", "SEG", "SR"]
    # The SEG in Orthanc holds body, lungs and bone on the CT's frames.
    with clean_orthanc.rest() as rest:
        series = rest.get(f"/dicom-web/studies/{studies[0]}/series", params={"Modality": "SEG"})
        seg_series = series.json()[0]["0020000E"]["Value"][0]
        meta = rest.get(f"/dicom-web/studies/{studies[0]}/series/{seg_series}/metadata").json()[0]
    labels = sorted(s["00620005"]["Value"][0] for s in meta["00620002"]["Value"])
    assert labels == ["Body", "Bone", "Lungs"]


def test_a_workitem_naming_an_unknown_server_fails_with_a_reason(
    ups_server: UpsServer, clean_orthanc: OrthancServer
) -> None:
    body = _workitem(generate_uid())
    body[0]["00404021"]["Value"][0]["00080054"]["Value"] = ["ELSEWHERE"]
    with ups_server.client() as http:
        uid = http.post("/workitems", json=body).headers["Location"].rsplit("/", 1)[1]
    log: list[str] = []
    assert _worker(ups_server, clean_orthanc, log).run_once() == 1
    item = _state(ups_server, uid)
    assert item["00741000"]["Value"] == ["CANCELED"]
    assert "ELSEWHERE" in item["00741238"]["Value"][0]


_KILLED_WORKER = """
import os
import sys
from dicomstation.auth import http_client
from dicomstation.config import Credentials, DicomWebServer, Secret
from dicomstation.pipeline.ups_worker import (
    UpsClient,
    Worker,
    WorkerOptions,
    parse_workitem,
    segmentation_workitem,
)
root, pacs_url = sys.argv[1:3]
token, user, password = (os.environ[k] for k in ("UPS_TOKEN", "PACS_USER", "PACS_PASSWORD"))
worklist = DicomWebServer("worklist", root, Credentials(token=Secret(token)))
options = WorkerOptions(
    {"pacs": DicomWebServer("pacs", pacs_url, Credentials(user, Secret(password)))},
    segmenter="callable",
    params={"function": "tests.ups.blocking:hang", "labels": {"1": {"label": "x"}}},
    lease=1.5,
)
Worker(UpsClient(worklist, http_client(worklist)), options).run_once()
"""


def test_a_killed_workers_workitem_is_reclaimed_after_its_lease(
    ups_server: UpsServer, clean_orthanc: OrthancServer, tmp_path: Path
) -> None:
    study = _upload_study(clean_orthanc, tmp_path)
    uid = _post(ups_server, study)
    marker = tmp_path / "segmenting"
    env = os.environ | {
        "UPS_TEST_MARKER": str(marker),
        "UPS_TOKEN": TOKEN,
        "PACS_USER": clean_orthanc.user,
        "PACS_PASSWORD": clean_orthanc.password,
    }
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WORKER, ups_server.root, clean_orthanc.dicomweb_url],
        env=env,
        cwd=Path(__file__).parents[2],
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the child worker never reached its segmenter"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert _state(ups_server, uid)["00741000"]["Value"] == ["IN PROGRESS"]
    log: list[str] = []
    worker = _worker(ups_server, clean_orthanc, log)
    deadline = time.monotonic() + 30
    done = 0
    while not done and time.monotonic() < deadline:
        done = worker.run_once()  # 409 while the dead worker's lease holds
    assert done == 1, log
    assert _state(ups_server, uid)["00741000"]["Value"] == ["COMPLETED"]
    assert json.dumps(_orthanc_modalities(clean_orthanc, study)) == '["CT", "SEG", "SR"]'


def test_worker_cli_performs_a_workitem_once(
    ups_server: UpsServer,
    clean_orthanc: OrthancServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from dicomstation.cli.main import app
    from dicomstation.settings import Settings

    config = tmp_path / "settings.toml"
    monkeypatch.setenv("DICOMSTATION_CONFIG", str(config))
    creds = Credentials(username=clean_orthanc.user, password=Secret(clean_orthanc.password))
    settings = Settings().with_server(_worklist(ups_server))
    settings.with_server(DicomWebServer("pacs", clean_orthanc.dicomweb_url, creds)).save(config)
    study = _upload_study(clean_orthanc, tmp_path)
    uid = _post(ups_server, study)
    args = ["worker", "worklist", "--once", "--param", "min_lung_ml=0.1"]
    result = CliRunner().invoke(app, [*args, "--param", "min_bone_ml=0.05"])
    assert result.exit_code == 0, result.output
    assert _state(ups_server, uid)["00741000"]["Value"] == ["COMPLETED"]
    assert TOKEN not in result.output and clean_orthanc.password not in result.output
    bad = CliRunner().invoke(app, ["worker", "worklist", "--once", "--segmenter", "nope"])
    assert bad.exit_code != 0 and "unknown segmenter" in bad.output


def test_a_worker_runs_its_task_on_dask(
    ups_server: UpsServer, clean_orthanc: OrthancServer, tmp_path: Path
) -> None:
    from dicomstation.pipeline.dask_executor import DaskExecutor

    study = _upload_study(clean_orthanc, tmp_path)
    uid = _post(ups_server, study)
    log: list[str] = []
    worker = _worker(ups_server, clean_orthanc, log, executor=DaskExecutor("local:1"))
    assert worker.run_once() == 1, log
    assert _state(ups_server, uid)["00741000"]["Value"] == ["COMPLETED"], log
    assert _orthanc_modalities(clean_orthanc, study) == ["CT", "SEG", "SR"]


def test_segmentation_workitem_round_trips_through_parse_workitem() -> None:
    servers = {
        name: DicomWebServer(name, f"http://127.0.0.1:1/{name}") for name in ("pacs", "cloud")
    }
    body = segmentation_workitem("1.2.3", "pacs", "cloud", ("1.2.3.4", "1.2.3.5"))
    task = parse_workitem(body[0], servers)
    assert (task.study_uid, task.series_uids) == ("1.2.3", ("1.2.3.4", "1.2.3.5"))
    assert (task.source, task.destination) == ("pacs", "cloud")
