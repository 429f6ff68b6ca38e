"""The web UI's transfer jobs are ledger pipelines: they outlive the UI process and resume."""

from __future__ import annotations

from dataclasses import replace

from dicomstation.config import DicomWebServer
from dicomstation.models import Level, Query
from dicomstation.settings import Settings
from dicomstation.web.demo import DEMO_SERVER, demo_environment
from dicomstation.web.workstation import Workstation
from tests.peers import free_port


def test_a_failed_fetch_job_is_listed_after_a_restart_and_resumes() -> None:
    with demo_environment(say=lambda _text: None) as env:
        ws = env.workstation
        demo = Settings.load(ws.settings_path).server(DEMO_SERVER)
        assert isinstance(demo, DicomWebServer)
        down = replace(demo, name="mirror", url=f"http://127.0.0.1:{free_port()}/dicom-web")
        Settings.load(ws.settings_path).with_server(down).save(ws.settings_path)
        # two studies: each item retries its requests, then itself, with backoff (~12 s)
        studies = env.pacs.find(Query(Level.STUDY))[:2]
        job = ws.fetch("mirror", [(s.study_uid, []) for s in studies])  # type: ignore[union-attr]
        failed = ws.jobs.wait(job.id, timeout=120)
        assert failed.state == "failed" and "mirror" in failed.message

        restarted = Workstation(ws.db, ws.settings_path)  # a new UI process on the same database
        listed = {j["id"]: j for j in restarted.jobs.all()}
        assert listed[job.id]["state"] == "failed" and listed[job.id]["resumable"]
        assert listed[job.id]["title"] == job.title

        back_up = replace(demo, name="mirror")  # the server is reachable again
        Settings.load(ws.settings_path).with_server(back_up).save(ws.settings_path)
        resumed = restarted.jobs.wait(restarted.resume(job.id).id, timeout=120)
        assert resumed.state == "done", resumed.message
        assert resumed.id == job.id
        assert len(ws.db.find(Query(Level.STUDY))) == len(studies)
        assert {j["id"]: j["state"] for j in Workstation(ws.db, ws.settings_path).jobs.all()}[
            job.id
        ] == "done"
