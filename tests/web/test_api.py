"""The UI's JSON API: settings (secrets never sent back), browsing, jobs, viewer, bad input."""

from __future__ import annotations

import io
import re
import stat
import time
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image

from dicomstation.models import Level, Query
from dicomstation.web.demo import DemoEnvironment


def _phantom(api: httpx.Client, server: str = "demo") -> tuple[str, str]:
    studies = api.get(f"/api/servers/{server}/studies", params={"PatientName": "phantom*"}).json()[
        "items"
    ]
    study = studies[0]["study_uid"]
    series = api.get(f"/api/servers/{server}/studies/{study}/series").json()
    return study, next(s["series_uid"] for s in series if s["modality"] == "CT")


def _wait(api: httpx.Client, job: dict) -> dict:
    deadline = time.monotonic() + 60
    while job["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
        job = api.get(f"/api/jobs/{job['id']}").json()
    return job


def test_page_and_assets_are_served_offline(api: httpx.Client) -> None:
    page = api.get("/")
    assert page.status_code == 200
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)  # no CDN, nothing external
    for asset in ("/static/app.js", "/static/style.css"):
        response = api.get(asset)
        assert response.status_code == 200
        assert not re.search(r"(import|fetch)\(\s*[\"']https?:", response.text)


def test_server_settings_never_return_secrets(api: httpx.Client, demo: DemoEnvironment) -> None:
    saved = api.put(
        "/api/servers/pacs",
        json={
            "url": "https://pacs.example/dicom-web",
            "username": "alice",
            "password": "hunter2",
            "token": "tok-xyz",
        },
    ).json()
    assert saved["password"] == "set" and saved["token"] == "set"
    listing = api.get("/api/servers").text
    assert "hunter2" not in listing and "tok-xyz" not in listing
    # saving again without secrets keeps them; "clear" removes one
    api.put(
        "/api/servers/pacs",
        json={"url": "https://pacs.example/dicom-web", "username": "alice", "clear": ["token"]},
    )
    server = demo.workstation.settings().server("pacs")
    assert server.credentials.password.reveal() == "hunter2"
    assert not server.credentials.token
    mode = demo.workstation.settings_path.stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    auth = api.put("/api/auth", json={"username": "bob", "password": "pw2"}).json()
    assert auth == {"username": "bob", "password": "set", "token": "not set"}
    assert api.delete("/api/servers/pacs").status_code == 200
    assert "pacs" not in api.get("/api/servers").text


@pytest.mark.parametrize(
    ("body", "fragment"),
    [({"url": "ftp://x"}, "http"), ({}, "url"), ({"protocol": "dimse", "host": "h"}, "ae_title")],
)
def test_bad_server_forms_are_400(api: httpx.Client, body: dict, fragment: str) -> None:
    response = api.put("/api/servers/bad", json=body)
    assert response.status_code == 400
    assert fragment in response.json()["detail"]
    assert api.put("/api/servers/local", json={"url": "http://x"}).status_code == 400


def test_query_paging_and_filters(api: httpx.Client) -> None:
    first = api.get("/api/servers/demo/studies", params={"limit": 3}).json()
    second = api.get("/api/servers/demo/studies", params={"limit": 3, "offset": 3}).json()
    assert first["more"] and len(first["items"]) == 3
    assert not {s["study_uid"] for s in first["items"]} & {s["study_uid"] for s in second["items"]}
    ct = api.get("/api/servers/demo/studies", params={"ModalitiesInStudy": "CT"}).json()
    assert ct["items"] and all("CT" in s["modalities"] for s in ct["items"])
    dated = api.get("/api/servers/demo/studies", params={"StudyDate": "19950101-19951231"})
    assert [s["study_date"] for s in dated.json()["items"]] == ["19950903"]


def test_metadata_and_thumbnails_without_fetching(api: httpx.Client) -> None:
    study, series = _phantom(api)
    headers = api.get(f"/api/servers/demo/studies/{study}/series/{series}/metadata").json()
    assert len(headers) == 40
    assert headers[0]["00100010"]["Value"][0]["Alphabetic"] == "Phantom^Head"
    thumb = api.get(f"/api/servers/demo/studies/{study}/series/{series}/thumbnail")
    assert thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size[0] <= 128


def test_fetch_job_reports_progress_then_delete(api: httpx.Client, demo: DemoEnvironment) -> None:
    # fetching from "demo" into the same database: everything is already there (skipped)
    study, series = _phantom(api)
    job = api.post(
        "/api/fetch", json={"server": "demo", "items": [{"study": study, "series": [series]}]}
    ).json()
    done = _wait(api, job)
    assert done["state"] == "done", done
    assert done["reports"][0]["skipped"] == 40
    assert any(j["id"] == job["id"] for j in api.get("/api/jobs").json())


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "fragment"),
    [
        ("get", "/api/servers/nope/studies", None, 400, "unknown server 'nope'"),
        ("get", "/api/servers/demo/studies?limit=0", None, 400, "limit"),
        ("get", "/api/servers/demo/studies/1.2.x/series", None, 400, "1.2.x"),
        ("post", "/api/fetch", {"server": "demo", "items": []}, 400, "nothing selected"),
        ("post", "/api/fetch", {"server": "demo", "items": [{"study": "abc"}]}, 400, "abc"),
        ("post", "/api/send", {"server": "demo", "uids": []}, 400, "nothing selected"),
        ("post", "/api/send", {"server": "demo", "uids": ["9.9.9"]}, 404, "9.9.9"),
        ("delete", "/api/local/9.9.9", None, 404, "9.9.9"),
        ("delete", "/api/local/x", None, 400, "invalid UID"),
        ("get", "/api/jobs/nope", None, 404, "nope"),
        ("get", "/api/volumes/nope/render", None, 404, "nope"),
        ("post", "/api/volumes", {"series_uid": "1.2.3"}, 404, "1.2.3"),
    ],
)
def test_bad_requests_get_clear_4xx(
    api: httpx.Client, method: str, path: str, body: dict | None, status: int, fragment: str
) -> None:
    response = api.request(method.upper(), path, json=body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["detail"]


def test_viewer_render_segment_export_send(api: httpx.Client, demo: DemoEnvironment) -> None:
    _study, series = _phantom(api, "local")
    volume = api.post("/api/volumes", json={"series_uid": series}).json()
    assert volume["shape"] == {"axial": 40, "coronal": 128, "sagittal": 128}
    vid = volume["id"]
    assert api.post(f"/api/volumes/{vid}/export", json={"kind": "SEG"}).status_code == 422
    for view in ("axial", "coronal", "sagittal"):
        png = api.get(f"/api/volumes/{vid}/render", params={"view": view, "window": "40,80"})
        image = Image.open(io.BytesIO(png.content))
        assert np.asarray(image).std() > 0
    coronal = Image.open(
        io.BytesIO(api.get(f"/api/volumes/{vid}/render", params={"view": "coronal"}).content)
    )
    assert coronal.size == (128, 80)  # 40 slices of 3 mm shown at 1.5 mm pixels
    assert api.get(f"/api/volumes/{vid}/render", params={"mip": "1"}).status_code == 200
    grown = api.post(
        f"/api/volumes/{vid}/segment",
        json={"method": "region_grow", "low": 300, "high": 3000, "seeds": [[20, 64, 10]]},
    ).json()
    thresholded = api.post(
        f"/api/volumes/{vid}/segment", json={"method": "threshold", "low": 300, "high": 3000}
    ).json()
    assert 0 < grown["voxels"] <= thresholded["voxels"]
    exported = api.post(
        f"/api/volumes/{vid}/export",
        json={"kind": "SEG", "series_description": "Bone", "institution_name": "Demo Hospital"},
    ).json()
    exported = _wait(api, exported)  # an export is a ledger job; its outputs are the series
    assert exported["state"] == "done" and exported["kind"] == "export", exported
    seg_uid = exported["outputs"][0]
    seg = demo.workstation.db.find(Query(Level.SERIES, {"SeriesInstanceUID": seg_uid}))
    assert seg[0].modality == "SEG" and seg[0].description == "Bone"
    job = _wait(api, api.post("/api/send", json={"server": "demo", "uids": [seg_uid]}).json())
    assert job["state"] == "done", job
    assert job["reports"][0]["succeeded"] == 1
    assert demo.pacs.find(Query(Level.SERIES, {"SeriesInstanceUID": seg_uid}))


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"method": "magic"}, 422, "magic"),
        ({"method": "threshold", "low": 5, "high": 1}, 422, "above"),
        ({"method": "region_grow", "low": 0, "high": 1, "seeds": [[1, 2]]}, 400, "seed"),
        ({"method": "region_grow", "low": 0, "high": 1, "seeds": [["a", 1, 2]]}, 400, "numbers"),
        ({"method": "region_grow", "low": 300, "high": 3000, "seeds": [[0, 0, 0]]}, 422, "outside"),
    ],
)
def test_bad_segmentation_requests(
    api: httpx.Client, body: dict, status: int, fragment: str
) -> None:
    _study, series = _phantom(api, "local")
    vid = api.post("/api/volumes", json={"series_uid": series}).json()["id"]
    response = api.post(f"/api/volumes/{vid}/segment", json=body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["detail"]
    bad_window = api.get(f"/api/volumes/{vid}/render", params={"window": "40,-3"})
    assert bad_window.status_code == 400


def test_cancel_a_running_job(api: httpx.Client, demo: DemoEnvironment) -> None:
    def work(progress, cancel):  # type: ignore[no-untyped-def]
        from dicomstation.errors import CancelledError
        from dicomstation.models import Phase, ProgressEvent

        for step in range(600):
            progress(ProgressEvent("fetch", Phase.PROGRESS, step, 600))
            if cancel.cancelled:
                raise CancelledError("stopped")
            time.sleep(0.05)
        return []

    job = demo.workstation.jobs.start("slow fetch", work)
    time.sleep(0.2)
    assert api.get(f"/api/jobs/{job.id}").json()["state"] == "running"
    api.post(f"/api/jobs/{job.id}/cancel")
    final = _wait(api, api.get(f"/api/jobs/{job.id}").json())
    assert final["state"] == "cancelled"
    assert 0 < final["done"] < 600


def test_delete_from_the_local_database(api: httpx.Client, demo: DemoEnvironment) -> None:
    studies = api.get("/api/servers/local/studies", params={"PatientName": "Lestrade*"})
    study = studies.json()["items"][0]["study_uid"]
    deleted = api.delete(f"/api/local/{study}").json()
    assert deleted["instances"] == 1
    assert demo.workstation.db.find(Query(Level.STUDY, {"StudyInstanceUID": study})) == []
    assert api.delete(f"/api/local/{study}").status_code == 404


def test_a_projection_images_segment_is_an_area(
    api: httpx.Client, demo: DemoEnvironment, shared_data: Path
) -> None:
    """A chest X-ray in the viewer: the segmentation's size is an area (mm2), then a SEG + SR."""
    path = shared_data / "highdicom_seg_sr" / "dx_image.dcm"
    demo.workstation.db.import_path([path], copy=True)
    image = pydicom.dcmread(path, stop_before_pixels=True)
    vid = api.post("/api/volumes", json={"series_uid": image.SeriesInstanceUID}).json()["id"]
    found = api.post(
        f"/api/volumes/{vid}/segment", json={"method": "threshold", "low": 100, "high": 5000}
    )
    result = found.json()
    pixel = float(image.ImagerPixelSpacing[0]) * float(image.ImagerPixelSpacing[1])
    assert result["area_mm2"] == pytest.approx(result["voxels"] * pixel, abs=1e-3), result
    exported = _wait(api, api.post(f"/api/volumes/{vid}/export", json={"kind": "SR"}).json())
    assert exported["state"] == "done" and len(exported["outputs"]) == 2, exported
