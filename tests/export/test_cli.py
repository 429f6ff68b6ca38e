"""``dicomstation segment`` and ``dicomstation export ...`` on a real local database."""

from __future__ import annotations

import json
from pathlib import Path

import nrrd
import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from dicomstation.cli.main import app
from dicomstation.config import Credentials, DicomWebServer, Secret
from dicomstation.database import Database
from dicomstation.export import SourceSeries, is_bundle, load_scene, read_sr_measurements
from dicomstation.settings import Settings
from tests.export.conftest import dciodvfy_errors
from tests.peers import OrthancServer

runner = CliRunner()


@pytest.fixture()
def db_path(tmp_path: Path, ct_files: list[Path]) -> Path:
    path = tmp_path / "db"
    with Database.open(path) as db:
        db.import_path(ct_files, copy=True)
    return path


def _run(*args: str) -> list[dict[str, object]]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    parsed: list[dict[str, object]] = json.loads(result.stdout)
    return parsed


def _check_stored(db_path: Path, uids: list[str]) -> list[pydicom.Dataset]:
    with Database.open(db_path) as db:
        assert db.has_instances(uids) == set(uids)
        paths = [db.instance_path(uid) for uid in uids]
    for path in paths:
        assert dciodvfy_errors(path) == []
    return [pydicom.dcmread(p) for p in paths]


def test_segment_creates_seg_and_sr(db_path: Path, ct: SourceSeries) -> None:
    seg, sr = _run(
        "segment",
        ct.series_uid,
        "--threshold",
        "250",
        "350",
        "--seed",
        "22,22,10",
        "--largest",
        "--fill-holes",
        "--label",
        "Bright",
        "--term",
        "bone",
        "--institution",
        "Test Hospital",
        "--db",
        str(db_path),
    )
    assert (seg["kind"], sr["kind"]) == ("seg", "sr")
    (seg_ds,) = _check_stored(db_path, list(seg["sop_uids"]))  # type: ignore[arg-type]
    (sr_ds,) = _check_stored(db_path, list(sr["sop_uids"]))  # type: ignore[arg-type]
    assert seg_ds.SegmentSequence[0].SegmentLabel == "Bright"
    assert seg_ds.InstitutionName == sr_ds.InstitutionName == "Test Hospital"
    stats = sr["statistics"][0]  # type: ignore[index]
    assert stats["mean"] == pytest.approx(300.0)
    assert read_sr_measurements(sr_ds)["Bright #1"]["Mean"] == pytest.approx(300.0)


def test_segment_reports_bad_seeds_clearly(db_path: Path, ct: SourceSeries) -> None:
    result = runner.invoke(
        app,
        [
            "segment",
            ct.series_uid,
            "--threshold",
            "250",
            "350",
            "--seed",
            "0,0,0",
            "--db",
            str(db_path),
        ],
    )
    assert result.exit_code == 3
    assert "seed at voxel 0,0,0 has a value outside [250, 350]" in " ".join(result.output.split())
    result = runner.invoke(
        app, ["segment", "1.2.3.4", "--threshold", "0", "1", "--db", str(db_path)]
    )
    assert result.exit_code == 3 and "1.2.3.4" in result.output
    result = runner.invoke(
        app,
        [
            "segment",
            ct.series_uid,
            "--threshold",
            "0",
            "1",
            "--term",
            "kidneys",
            "--db",
            str(db_path),
        ],
    )
    assert result.exit_code == 2 and "known terms: bone" in " ".join(result.output.split())
    with Database.open(db_path) as db:  # nothing was written by the failed commands
        assert len(db.study_files(str(ct.first.StudyInstanceUID))) == len(ct.datasets)


def test_export_commands(db_path: Path, ct: SourceSeries, tmp_path: Path) -> None:
    (seg, _) = _run("segment", ct.series_uid, "--threshold", "100", "350", "--db", str(db_path))
    seg_uid = str(seg["sop_uids"][0])  # type: ignore[index]
    (sr,) = _run("export", "sr", seg_uid, "--series-number", "42", "--db", str(db_path))
    (sr_ds,) = _check_stored(db_path, list(sr["sop_uids"]))  # type: ignore[arg-type]
    assert sr_ds.SeriesNumber == 42
    (sc,) = _run(
        "export",
        "sc",
        ct.series_uid,
        "--seg",
        seg_uid,
        "--window",
        "40,400",
        "--description",
        "Shot",
        "--db",
        str(db_path),
    )
    (sc_ds,) = _check_stored(db_path, list(sc["sop_uids"]))  # type: ignore[arg-type]
    assert sc_ds.SeriesDescription == "Shot"
    (mip,) = _run("export", "sc", ct.series_uid, "--mip", "--db", str(db_path))
    _check_stored(db_path, list(mip["sop_uids"]))  # type: ignore[arg-type]
    (derived,) = _run("export", "derived", ct.series_uid, "--smooth", "1", "--db", str(db_path))
    images = _check_stored(db_path, list(derived["sop_uids"]))  # type: ignore[arg-type]
    assert len(images) == len(ct.datasets) and images[0].ImageType[0] == "DERIVED"
    (bundle,) = _run(
        "export",
        "bundle",
        ct.series_uid,
        str(derived["series_uid"]),
        "--seg",
        seg_uid,
        "--window",
        "40,400",
        "--db",
        str(db_path),
    )
    (bundle_ds,) = _check_stored(db_path, list(bundle["sop_uids"]))  # type: ignore[arg-type]
    assert is_bundle(bundle_ds)
    scene = load_scene(bundle_ds)
    assert len(scene.volumes) == 2 and scene.segmentations[0].seg_uid == seg_uid
    assert scene.view.window == (40.0, 400.0)


def test_export_seg_from_a_labelmap_file(db_path: Path, ct: SourceSeries, tmp_path: Path) -> None:
    labels = np.zeros(ct.volume.spatial_shape, dtype=np.uint8)
    labels[ct.volume.array > 250] = 1
    labels[(ct.volume.array > 100) & (ct.volume.array < 200)] = 2
    affine = ct.volume.affine
    header = {
        "space": "left-posterior-superior",
        "space directions": np.stack([affine[:3, 2], affine[:3, 1], affine[:3, 0]]),
        "space origin": affine[:3, 3],
    }
    path = tmp_path / "labels.nrrd"
    nrrd.write(str(path), labels.transpose(2, 1, 0), header)
    (seg,) = _run(
        "export",
        "seg",
        ct.series_uid,
        "--labelmap",
        str(path),
        "--segment",
        "1=Bright:bone",
        "--segment",
        "2=Middle:lesion",
        "--db",
        str(db_path),
    )
    (seg_ds,) = _check_stored(db_path, list(seg["sop_uids"]))  # type: ignore[arg-type]
    assert [s.SegmentLabel for s in seg_ds.SegmentSequence] == ["Bright", "Middle"]
    bad = runner.invoke(
        app,
        [
            "export",
            "seg",
            ct.series_uid,
            "--labelmap",
            str(tmp_path / "x.txt"),
            "--db",
            str(db_path),
        ],
    )
    assert bad.exit_code == 3 and "x.txt" in bad.output


@pytest.mark.orthanc
def test_send_option_stores_on_a_configured_server(
    db_path: Path,
    ct: SourceSeries,
    clean_orthanc: OrthancServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DICOMSTATION_CONFIG", str(tmp_path / "settings.toml"))
    server = DicomWebServer(
        "orthanc",
        clean_orthanc.dicomweb_url,
        Credentials(username=clean_orthanc.user, password=Secret(clean_orthanc.password)),
    )
    Settings().with_server(server).save()
    (sc,) = _run("export", "sc", ct.series_uid, "--mip", "--send", "orthanc", "--db", str(db_path))
    assert sc["sent"] == 1
    with clean_orthanc.rest() as client:
        found = client.post(
            "/tools/find",
            json={"Level": "Instance", "Query": {"SOPInstanceUID": sc["sop_uids"][0]}},
        ).json()  # type: ignore[index]
    assert len(found) == 1
