"""The JavaScript dicomweb-client (npm ``dicomweb-client``, run by Node) calls every API
method against our server; what it got is checked here against pydicom's reading of the
stored files.

``make test`` installs the package into ``.cache/dicomweb-client-js`` (outside git); the
test skips when Node or the package is missing. The driver is ``js/driver.js``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.conformance.conftest import Served

pytestmark = pytest.mark.shared

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / ".cache" / "dicomweb-client-js" / "node_modules" / "dicomweb-client"
DRIVER = Path(__file__).resolve().parent / "js" / "driver.js"
# every method of the package's DICOMwebClient (0.11): all are called by the driver
API = {
    "searchForStudies",
    "searchForSeries",
    "searchForInstances",
    "retrieveStudyMetadata",
    "retrieveSeriesMetadata",
    "retrieveInstanceMetadata",
    "retrieveInstance",
    "retrieveSeries",
    "retrieveStudy",
    "retrieveInstanceFrames",
    "retrieveInstanceRendered",
    "retrieveInstanceThumbnail",
    "retrieveInstanceFramesRendered",
    "retrieveInstanceFramesThumbnail",
    "retrieveBulkData",
    "storeInstances",
    "buildInstanceWadoURIUrl",
    "setDebug",
    "getDebug",
    "setVerbose",
    "getVerbose",
}


def _uids(path: Path) -> tuple[str, str, str]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


@pytest.fixture(scope="module")
def report(small_server: Served, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not PACKAGE.is_dir():
        pytest.skip("node or the npm package dicomweb-client is missing (make test installs it)")
    out = tmp_path_factory.mktemp("dicomweb-client-js")
    by_name = {p.name: p for p in small_server.files.values()}
    study, series, sop = _uids(by_name["3.dcm"])  # the MR, big endian as stored
    frames_study, frames_series, frames_sop = _uids(by_name["emri_small.dcm"])
    new = pydicom.dcmread(by_name["1.dcm"])
    new.SOPInstanceUID = new.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    new.save_as(out / "store.dcm", enforce_file_format=True)
    uids = {
        "study": study,
        "series": series,
        "sop": sop,
        "frames_study": frames_study,
        "frames_series": frames_series,
        "frames_sop": frames_sop,
        "store": str(out / "store.dcm"),
        "stored_sop": str(new.SOPInstanceUID),
    }
    (out / "uids.json").write_text(json.dumps(uids))
    done = subprocess.run(
        [node, str(DRIVER), str(PACKAGE), small_server.url, str(out / "uids.json"), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    calls = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return {"uids": uids, "calls": calls, "served": small_server}


def _ok(report: dict[str, Any], name: str) -> dict[str, Any]:
    result = report["calls"][name]
    assert result["ok"], (name, result)
    return dict(result)


def _bytes(result: dict[str, Any]) -> list[bytes]:
    return [Path(f).read_bytes() for f in result["files"]]


def test_every_method_of_the_package_is_called() -> None:
    build = PACKAGE / "build" / "dicomweb-client.js"
    if not build.is_file():
        pytest.skip("the npm package dicomweb-client is missing (make test installs it)")
    source = build.read_text(encoding="utf-8")

    methods = set(re.findall(r'key: "([a-zA-Z]+)"', source))
    assert methods - API == set(), f"new methods to drive: {sorted(methods - API)}"
    driver = DRIVER.read_text(encoding="utf-8")
    assert all(f"client.{name}(" in driver for name in API)


def test_searches(report: dict[str, Any]) -> None:
    served: Served = report["served"]
    assert len(_ok(report, "searchForStudies")["value"]) == 2
    [paged] = _ok(report, "searchForStudiesPaged")["value"]
    assert "00100010" in paged  # includefield=all
    assert len(_ok(report, "searchForSeries")["value"]) == 1
    assert len(_ok(report, "searchForSeriesFiltered")["value"]) == 2
    assert len(_ok(report, "searchForInstances")["value"]) == 3
    every = {i["00080018"]["Value"][0] for i in _ok(report, "searchForAllInstances")["value"]}
    assert set(served.files) <= every


def test_metadata(report: dict[str, Any]) -> None:
    uids = report["uids"]
    assert len(_ok(report, "retrieveStudyMetadata")["value"]) == 3
    assert len(_ok(report, "retrieveSeriesMetadata")["value"]) == 3
    [instance] = _ok(report, "retrieveInstanceMetadata")["value"]
    assert instance["00080018"]["Value"] == [uids["sop"]]
    assert instance["7FE00010"]["BulkDataURI"].startswith("http")


def test_retrieved_instances_equal_the_stored_ones(report: dict[str, Any]) -> None:
    served: Served = report["served"]
    [one] = _bytes(_ok(report, "retrieveInstance"))
    ds = pydicom.dcmread(BytesIO(one))
    assert ds.SOPInstanceUID == report["uids"]["sop"]
    reference = pydicom.dcmread(served.files[ds.SOPInstanceUID]).pixel_array
    assert np.array_equal(ds.pixel_array, reference)
    for name in ("retrieveSeries", "retrieveStudy"):
        parts = [pydicom.dcmread(BytesIO(b)) for b in _bytes(_ok(report, name))]
        assert len(parts) == 3, name
        for part in parts:
            stored = pydicom.dcmread(served.files[part.SOPInstanceUID]).pixel_array
            assert np.array_equal(part.pixel_array, stored), (name, part.SOPInstanceUID)


def test_frames_and_bulkdata_equal_pydicom_decoding(report: dict[str, Any]) -> None:
    served: Served = report["served"]
    uids = report["uids"]
    reference = pydicom.dcmread(served.files[uids["frames_sop"]]).pixel_array
    frames = _bytes(_ok(report, "retrieveInstanceFrames"))
    assert frames == [reference[0].astype("<u2").tobytes(), reference[2].astype("<u2").tobytes()]
    [bulk] = _bytes(_ok(report, "retrieveBulkData"))
    stored = pydicom.dcmread(served.files[uids["sop"]]).pixel_array  # big endian stored
    assert bulk == stored.astype(stored.dtype.newbyteorder("<")).tobytes()


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("retrieveInstanceRendered", "PNG"),
        ("retrieveInstanceThumbnail", "JPEG"),
        ("retrieveInstanceFramesRendered", "PNG"),
        ("retrieveInstanceFramesThumbnail", "JPEG"),
    ],
)
def test_rendered_and_thumbnails(report: dict[str, Any], name: str, kind: str) -> None:
    from PIL import Image

    [data] = _bytes(_ok(report, name))
    image = Image.open(BytesIO(data))
    assert image.format == kind
    assert np.asarray(image.convert("L")).std() > 5, f"{name}: a blank image"


def test_store_instances(report: dict[str, Any]) -> None:
    served: Served = report["served"]
    answer = _ok(report, "storeInstances")["value"]
    sop = report["uids"]["stored_sop"]
    assert sop in json.dumps(answer)  # the STOW-RS answer names the stored instance
    assert served.db.has_instances([sop]) == {sop}


def test_wado_uri_url_and_settings(report: dict[str, Any]) -> None:
    built = _ok(report, "buildInstanceWadoURIUrl")["value"]
    assert built.startswith(report["served"].url) and report["uids"]["sop"] in built
    assert _ok(report, "debugAndVerbose")
