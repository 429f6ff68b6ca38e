"""A work item with nothing the selection takes is skipped, not failed.

Tried as a user would: a pipeline over every study of a heterogeneous database (a CT
study, a study of a colour ultrasound image and a structured report, a study of a
waveform, a study with only a 3-slice scout) failed every study but the CT one:
"no image series ... matches the selection", "is not a scalar volume", "not an image
(no Rows/Columns)"; the run exited 1 and every rerun tried them again. MONAI Deploy's
series selector and a PACS routing rule simply pass such studies over. Now they are
``skipped`` with the reason, the run exits 0, a rerun leaves them alone, and real
failures (a series whose files are gone) still fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from typer.testing import CliRunner

from dicomstation.cli.main import app
from dicomstation.database import Database
from dicomstation.errors import NothingSelectedError
from dicomstation.models import Level, Query
from dicomstation.pipeline import Ledger, Pipeline, RunOptions, StepState, WorkItem
from dicomstation.pipeline.step import StepContext
from tests.peers import OrthancServer
from tests.pipeline.conftest import make_cohort, settings_for
from tests.synth import write_ct_series

runner = CliRunner()
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
RWV = "1.2.840.10008.5.1.4.1.1.67"  # Real World Value Mapping: no pixels, no Rows
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def _write(folder: Path, sop_class: str, modality: str, study: str, **attrs: object) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid()
    ds.Modality, ds.PatientID, ds.PatientName, ds.SeriesNumber = modality, "SKIP", "SKIP^P", 2
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _colour_us(folder: Path, study: str, photometric: str) -> Path:
    rgb = photometric == "RGB"
    pixels = np.zeros((16, 16, 3) if rgb else (16, 16), np.uint8)
    colour: dict[str, object] = {"SamplesPerPixel": 3, "PlanarConfiguration": 0} if rgb else {}
    if photometric == "PALETTE COLOR":
        for c in ("Red", "Green", "Blue"):
            colour[f"{c}PaletteColorLookupTableDescriptor"] = [256, 0, 8]
            colour[f"{c}PaletteColorLookupTableData"] = bytes(range(256))
        colour["SamplesPerPixel"] = 1
    return _write(
        folder, US_IMAGE, "US", study, Rows=16, Columns=16, BitsAllocated=8, BitsStored=8,
        HighBit=7, PixelRepresentation=0, PhotometricInterpretation=photometric,
        PixelData=pixels.tobytes(), **colour,
    )  # fmt: skip


@pytest.fixture()
def mixed_db(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Studies by role: ct (10 slices), colour (RGB + palette US, a text SR), waveform, scout."""
    studies = {role: str(generate_uid()) for role in ("ct", "colour", "waveform", "scout")}
    path = tmp_path / "db"
    with Database.open(path) as db:
        db.import_path(write_ct_series(tmp_path / "ct", 10, size=16, study_uid=studies["ct"]))
        db.import_path(write_ct_series(tmp_path / "sc", 3, size=16, study_uid=studies["scout"]))
        colour = studies["colour"]
        db.import_path(_colour_us(tmp_path / "rgb", colour, "RGB"))
        db.import_path(_colour_us(tmp_path / "pal", colour, "PALETTE COLOR"))
        db.import_path(_write(tmp_path / "sr", BASIC_TEXT_SR, "SR", colour))
        db.import_path(_write(tmp_path / "rwv", RWV, "RWV", studies["waveform"]))
    return path, studies


def _pipeline_file(folder: Path, *, min_slices: int = 5) -> Path:
    table = {
        "name": "every study",
        "source": {"kind": "local", "level": "study"},
        "steps": [
            {"kind": "load", "select": {"min_slices": min_slices}},
            {"kind": "segment", "params": {"threshold": [0, 3000]}},
            {"kind": "export", "kinds": ["seg", "sr"]},
        ],
    }
    path = folder / "every.toml"
    path.write_text(tomli_w.dumps(table))
    return path


def test_studies_without_a_selected_image_series_are_skipped(
    mixed_db: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    db_path, studies = mixed_db
    path = _pipeline_file(tmp_path)
    args = ["run", str(path), "--db", str(db_path), "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["done"] == 1 and report["failed"] == {}, report
    skipped = report["skipped"]
    assert set(skipped) == {studies["colour"], studies["waveform"], studies["scout"]}
    assert all("no image series" in why for why in skipped.values()), skipped
    assert skipped[studies["scout"]].count(studies["scout"]) == 1  # named, and only once
    job = Pipeline.from_file(path).job_id
    with Ledger.open(db_path / "jobs.sqlite") as ledger:
        items = {i.item.study_uid: i for i in ledger.items(job)}
        assert items[studies["ct"]].state is StepState.DONE
        skips = {items[studies[r]].state for r in ("colour", "waveform", "scout")}
        assert skips == {StepState.SKIPPED}
        assert "no image series" in items[studies["scout"]].error
        steps = {r.step: r.state for r in items[studies["scout"]].steps}
        assert steps == {
            "load": StepState.SKIPPED, "segment": StepState.SKIPPED, "export": StepState.SKIPPED
        }  # fmt: skip
    with Database.open(db_path) as db:
        made = len(db.find(Query(Level.SERIES)))
    again = json.loads(runner.invoke(app, args).stdout)
    assert (again["items"], again["already_done"]) == (0, 4)  # skipped items are finished
    retried = runner.invoke(app, ["jobs", "retry", job[:6], "--db", str(db_path), "--json"])
    assert retried.exit_code == 0, retried.output  # retry takes skipped ones again; still skipped
    with Database.open(db_path) as db:
        assert len(db.find(Query(Level.SERIES))) == made  # nothing new, nothing twice


def test_colour_and_pixel_less_series_are_passed_over_beside_a_volume(tmp_path: Path) -> None:
    """One study holding a CT series, colour US images and a pixel-less instance: the CT loads."""
    study = str(generate_uid())
    pipeline = Pipeline.from_file(_pipeline_file(tmp_path, min_slices=0))
    load = pipeline.steps[0]
    with Database.open(tmp_path / "db") as db:
        db.import_path(write_ct_series(tmp_path / "ct", 4, size=16, study_uid=study))
        for photometric in ("RGB", "PALETTE COLOR"):
            db.import_path(_colour_us(tmp_path / photometric, study, photometric))
        db.import_path(_write(tmp_path / "rwv", RWV, "RWV", study))
        series = {r.series_uid: r.modality for r in db.find(Query(Level.SERIES))}  # type: ignore[union-attr]
        ct = next(uid for uid, modality in series.items() if modality == "CT")
        ctx = StepContext(db, WorkItem(study), pipeline.recipe_hash, {}, None)
        assert load.run(ctx) == (ct,) and set(ctx.series) == {ct}
        for uid in set(series) - {ct}:  # named alone, each is nothing to load
            ctx = StepContext(db, WorkItem(study, (uid,)), pipeline.recipe_hash, {}, None)
            with pytest.raises(NothingSelectedError, match="no image series"):
                load.run(ctx)


def test_a_series_whose_files_are_gone_still_fails(
    mixed_db: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    db_path, studies = mixed_db
    for file in (db_path / "files" / studies["ct"]).rglob("*.dcm"):
        file.unlink()
    path = _pipeline_file(tmp_path)
    result = runner.invoke(app, ["run", str(path), "--db", str(db_path), "--json"])
    assert result.exit_code == 3, result.output  # nothing done: the one volume failed
    report = json.loads(result.stdout)
    assert list(report["failed"]) == [studies["ct"]] and len(report["skipped"]) == 3


def test_fetch_selection_missing_on_the_server_skips_without_fetching(
    orthanc: OrthancServer, tmp_path: Path
) -> None:
    cohort = make_cohort(orthanc, tmp_path / "up", 2)
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("StudyInstanceUID\n" + "\n".join(cohort.studies) + "\n")
    table = {
        "name": "mr only",
        "source": {"kind": "manifest", "path": str(manifest)},
        "steps": [
            {"kind": "fetch", "server": "pacs", "select": {"modality": ["MR"]}},
            {"kind": "load"},
        ],
    }
    pipeline = Pipeline.from_dict(table)
    servers = {"pacs": settings_for(orthanc).server("pacs")}
    report = pipeline.run(RunOptions(database=tmp_path / "db", servers=servers))
    assert (report.done, report.failed) == (0, {}) and report.ok
    assert set(report.skipped) == set(cohort.studies)
    assert all("has no series on pacs matching" in why for why in report.skipped.values())
    with Database.open(tmp_path / "db") as db:
        assert db.find(Query(Level.STUDY)) == []
