"""Issue 12 with Orthanc's DICOMweb plugin as the client: what it retrieves from us is right.

The instance stored without a File Meta header (pydicom's rtstruct.dcm), a
big-endian MR and a 1-bit SEG are pulled by Orthanc (WADO-RS) from dicomstation;
Orthanc's copies carry the same data set and decode to pydicom's pixels.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicomstation.config import Secret
from dicomstation.database import Database
from dicomstation.server import RunningServer, ServerOptions, create_app, start_in_thread
from tests.peers import OrthancServer
from tests.server.test_orthanc import declare_dicomstation

pytestmark = pytest.mark.orthanc

NAMES = ("rtstruct.dcm", "MR_small_bigendian.dcm")
SEG = "highdicom_seg_sr/seg_image_sm_control.dcm"


@pytest.fixture()
def target(
    pydicom_files: Path, shared_data: Path
) -> Iterator[tuple[Database, RunningServer, list[Path]]]:
    options = ServerOptions(username="orthanc-peer", password=Secret("peer-pw"))
    files = [pydicom_files / n for n in NAMES] + [shared_data / SEG]
    with Database.temporary() as db:
        assert db.import_path(files).ok
        running = start_in_thread(create_app(db, options))
        try:
            yield db, running, files
        finally:
            running.stop()


def test_orthanc_retrieves_valid_instances(
    clean_orthanc: OrthancServer, target: tuple[Database, RunningServer, list[Path]]
) -> None:
    _db, server, files = target
    declare_dicomstation(clean_orthanc, server)
    with clean_orthanc.rest() as rest:
        studies = rest.post("/dicom-web/servers/dicomstation/get", json={"Uri": "/studies"}).json()
        uids = sorted(s["0020000D"]["Value"][0] for s in studies)
        fetched = rest.post(
            "/dicom-web/servers/dicomstation/retrieve",
            json={"Resources": [{"Study": uid} for uid in uids], "Synchronous": True},
        )
        assert fetched.status_code == 200, fetched.text
        instances = rest.get("/instances").json()
        assert len(instances) == len(files)
        copies = [
            pydicom.dcmread(io.BytesIO(rest.get(f"/instances/{i}/file").content)) for i in instances
        ]
    by_uid = {ds.SOPInstanceUID: ds for ds in copies}
    for path in files:
        original = pydicom.dcmread(path, force=True)
        copy = by_uid[original.SOPInstanceUID]
        assert copy.SOPClassUID == original.SOPClassUID
        if "PixelData" in original:
            assert np.array_equal(copy.pixel_array, original.pixel_array), path.name
        else:
            assert len(copy.StructureSetROISequence) == len(original.StructureSetROISequence)
