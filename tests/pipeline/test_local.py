"""Pipelines on a real database on disk: sources, selection, series numbers, idempotent commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from dicomstation.cli.main import app
from dicomstation.database import Database
from dicomstation.errors import ConfigError
from dicomstation.models import Level, Query
from dicomstation.pipeline import (
    UID_ROOT,
    Ledger,
    ManifestSource,
    Pipeline,
    RunOptions,
    SeriesSelector,
    StepState,
    WorkItem,
)
from tests.synth import write_ct_series

runner = CliRunner()


@pytest.fixture()
def db_path(tmp_path: Path) -> Path:
    """A database with two studies: one with a 10-slice and a 3-slice CT series, one empty-ish."""
    path = tmp_path / "db"
    study = generate_uid()
    with Database.open(path) as db:
        db.import_path(write_ct_series(tmp_path / "a", 10, size=32, study_uid=study), copy=True)
        db.import_path(write_ct_series(tmp_path / "b", 3, size=32, study_uid=study), copy=True)
        db.import_path(write_ct_series(tmp_path / "c", 10, size=32), copy=True)
    return path


def _table(**source: object) -> dict[str, object]:
    return {
        "name": "local",
        "source": {"kind": "local", "level": "study", **source},
        "steps": [
            {"kind": "load", "select": {"modality": ["CT"], "min_slices": 5}},
            {"kind": "segment", "params": {"threshold": [0, 3000]}},
            {"kind": "export", "kinds": ["seg", "sr"], "series_number": 7},
        ],
    }


def test_manifest_csv_and_jsonl(tmp_path: Path) -> None:
    study, series = generate_uid(), generate_uid()
    csv = tmp_path / "cohort.csv"
    csv.write_text(f"StudyInstanceUID,SeriesInstanceUID\n{study},{series}\n{study},\n")
    assert list(ManifestSource(csv).items(lambda _n: None)) == [WorkItem(study)]  # type: ignore[arg-type,return-value]
    lines = tmp_path / "cohort.jsonl"
    lines.write_text(json.dumps({"StudyInstanceUID": study, "SeriesInstanceUID": series}) + "\n")
    assert list(ManifestSource(lines).items(lambda _n: None)) == [WorkItem(study, (series,))]  # type: ignore[arg-type,return-value]
    lines.write_text('{"StudyInstanceUID": "1.2.x"}\n')
    with pytest.raises(ConfigError, match=r"cohort.jsonl:1: '1.2.x' is not a DICOM UID"):
        list(ManifestSource(lines).items(lambda _n: None))  # type: ignore[arg-type,return-value]


def test_selection_rules_on_local_headers(db_path: Path) -> None:
    with Database.open(db_path) as db:
        studies = [r.study_uid for r in db.find(Query(Level.STUDY))]  # type: ignore[union-attr]
        counts = sorted(len(SeriesSelector(min_slices=5).local(db, WorkItem(s))) for s in studies)
        assert counts == [1, 1]
        assert SeriesSelector(image_type=("DERIVED",)).local(db, WorkItem(studies[0])) == ()
        assert SeriesSelector(description="^ax").local(db, WorkItem(studies[0]))
    with pytest.raises(ConfigError, match="unknown series selection rule"):
        SeriesSelector.from_table({"modalty": "CT"})


def test_series_numbers_do_not_collide_and_reruns_make_nothing_new(db_path: Path) -> None:
    pipeline = Pipeline.from_dict(_table())
    report = pipeline.run(RunOptions(database=db_path))
    assert (report.done, report.failed) == (2, {})
    with Database.open(db_path) as db:
        for study in db.find(Query(Level.STUDY)):
            refs = db.find(Query(Level.SERIES, study_uid=study.study_uid))  # type: ignore[union-attr]
            ours = [r.series_number for r in refs if r.series_uid.startswith(UID_ROOT)]  # type: ignore[union-attr]
            theirs = {r.series_number for r in refs if not r.series_uid.startswith(UID_ROOT)}  # type: ignore[union-attr]
            assert len(ours) == 2 and len(set(ours)) == 2 and not set(ours) & theirs, refs
        before = sorted(r.series_uid for r in db.find(Query(Level.SERIES)))  # type: ignore[union-attr]
    (db_path / "jobs.sqlite").unlink()
    assert pipeline.run(RunOptions(database=db_path)).done == 2
    with Database.open(db_path) as db:
        assert sorted(r.series_uid for r in db.find(Query(Level.SERIES))) == before  # type: ignore[union-attr]


def test_cli_segment_twice_makes_one_seg_and_sr_gets_its_own_number(db_path: Path) -> None:
    with Database.open(db_path) as db:
        series = next(
            r.series_uid
            for r in db.find(Query(Level.SERIES))
            if r.num_instances == 10  # type: ignore[union-attr]
        )
    args = ["segment", series, "--threshold", "0", "3000", "--series-number", "1"]
    args += ["--db", str(db_path), "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, args)
    assert json.loads(first.stdout) == json.loads(second.stdout)
    seg, sr = json.loads(first.stdout)
    with Database.open(db_path) as db:
        made = {r.series_uid: r.series_number for r in db.find(Query(Level.SERIES))}  # type: ignore[union-attr]
    assert made[seg["series_uid"]] != made[sr["series_uid"]]
    assert 1 not in (made[seg["series_uid"]], made[sr["series_uid"]])  # 1 is the source's


def test_jobs_cli_retry_and_cancel(db_path: Path, tmp_path: Path) -> None:
    for file in (db_path / "files").rglob("*.dcm"):  # every study fails: its files are gone
        file.unlink()
    path = tmp_path / "p.toml"
    import tomli_w

    path.write_text(tomli_w.dumps(_table()))
    failed = runner.invoke(app, ["run", str(path), "--db", str(db_path), "--json"])
    assert failed.exit_code == 3  # nothing done
    errors = json.loads(failed.stdout)["failed"]
    assert len(errors) == 2 and all("No such file" in e for e in errors.values())
    job = Pipeline.from_file(path).job_id
    shown = runner.invoke(app, ["jobs", "show", job[:6], "--db", str(db_path), "--json"])
    assert {i["state"] for i in json.loads(shown.stdout)} == {"failed"}
    cancelled = runner.invoke(app, ["jobs", "cancel", job[:6], "--db", str(db_path)])
    assert cancelled.exit_code == 0 and "2 item(s)" in cancelled.stdout
    rerun = runner.invoke(app, ["run", str(path), "--db", str(db_path), "--json"])
    assert json.loads(rerun.stdout)["items"] == 0  # cancelled items stay out of a rerun
    retried = runner.invoke(app, ["jobs", "retry", job[:6], "--no-run", "--db", str(db_path)])
    assert retried.exit_code == 0 and "2 item(s)" in retried.output
    with Ledger.open(db_path / "jobs.sqlite") as ledger:
        assert {i.state for i in ledger.items(job)} == {StepState.PENDING}
    listed = runner.invoke(app, ["jobs", "list", "--db", str(db_path), "--json"])
    assert json.loads(listed.stdout) == [{"job": job, "name": "local", "counts": {"pending": 2}}]
